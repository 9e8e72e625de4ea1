package sidecar_test

import (
	"fmt"
	"time"

	"github.com/verbatimhq/verbatim/sidecar"
)

func ExampleShape() {
	tr := &sidecar.Transcript{Segments: []sidecar.Segment{
		{Start: 0, End: 6 * time.Second, Text: " We choose to go to the moon in this decade and do the other things, not because they are easy."},
		{Start: 9 * time.Second, End: 9500 * time.Millisecond, Text: " Thanks."},
	}}
	cues := sidecar.Shape(tr, sidecar.ShapeOptions{})
	b, _ := sidecar.VTT(cues)
	fmt.Print(string(b))
	// Output:
	// WEBVTT
	//
	// 00:00:00.000 --> 00:00:04.277
	// We choose to go to the moon in this
	// decade and do the other things,
	//
	// 00:00:04.340 --> 00:00:06.000
	// not because they are easy.
	//
	// 00:00:09.000 --> 00:00:10.000
	// Thanks.
}

func ExampleValidate() {
	cues := []sidecar.Cue{
		{Start: 0, End: 8 * time.Second, Text: "This cue stays up for far too long"},
	}
	fmt.Println(sidecar.Validate(cues, sidecar.ShapeOptions{}))
	// Output:
	// subtitles break the shaping limits: cue 1: lasts 8s, longer than 7s
}
