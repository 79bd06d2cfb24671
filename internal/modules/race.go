//go:build race

package modules

// raceEnabled says that the race detector is on: the nested runs get -race.
const raceEnabled = true
