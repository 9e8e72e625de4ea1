package whisper_test

import (
	"fmt"

	"github.com/verbatimhq/verbatim/whisper"
)

func ExampleDefaultOptions() {
	o := whisper.DefaultOptions()
	o.Language = "en"
	o.NoFallback = true // decode at Temperatures[0] only
	fmt.Println(o.Task, o.BeamSize, o.BestOf, o.Temperatures)
	fmt.Println(o.CompressionRatioThreshold, o.LogProbThreshold, o.NoSpeechThreshold)
	// Output:
	// transcribe 5 5 [0 0.2 0.4 0.6 0.8 1]
	// 2.4 -1 0.6
}
