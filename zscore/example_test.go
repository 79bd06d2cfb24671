package zscore_test

import (
	"fmt"
	"math"

	"github.com/tidemark-go/tidemark/zscore"
)

// A z-score says how many standard deviations a price is from its window's
// mean. It is undefined, and Of reports false, when the window's std is
// undefined (one event: NaN) or zero (all prices equal): the pipeline writes
// null then.
func ExampleOf() {
	for _, w := range []struct{ price, mean, std float64 }{
		{99_013.20, 99_012.80, 1.458},
		{99_010.00, 99_012.80, 1.4},
		{99_013.20, 99_013.20, math.NaN()}, // one event in the window
		{99_013.20, 99_013.20, 0},          // every price equal
	} {
		if z, ok := zscore.Of(w.price, w.mean, w.std); ok {
			fmt.Printf("zscore_price: %.4f\n", z)
		} else {
			fmt.Println("zscore_price: null")
		}
	}
	// Output:
	// zscore_price: 0.2743
	// zscore_price: -2.0000
	// zscore_price: null
	// zscore_price: null
}
