package kafkaio_test

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/tidemark-go/tidemark/kafkaio"
)

// A process that runs several stages profiles them one at a time: every
// goroutine of a stage, and of its sarama clients, carries the label
// ProfileLabel with the stage's group. Profile the whole process, then
//
//	go tool pprof -tags cpu.prof                          # each stage's share
//	go tool pprof -tagfocus tidemark.stage=prices cpu.prof # one stage
//
// (not run: it needs a broker and stages of your own).
func ExampleProfileLabel() {
	f, err := os.Create("cpu.prof")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Println(err)
		return
	}
	defer pprof.StopCPUProfile()

	var stages []*kafkaio.Stage // made with kafkaio.NewStage, groups "prices", "trades", ...
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, s := range stages {
		if err := s.Start(ctx); err != nil {
			fmt.Println(err)
			return
		}
	}
	// ... let them run, then stop them and the profile.
	fmt.Println("label:", kafkaio.ProfileLabel)
}
