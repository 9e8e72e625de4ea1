package tensor

import (
	"errors"
	"fmt"
	"runtime"
	"testing"
)

// TestCatch: a panic with an *Error, or with an error wrapping one, becomes the entry point's
// error; a nil dereference, a string and a plain error panic again with the same value, which a
// recover around the entry point observes.
func TestCatch(t *testing.T) {
	te := Errorf("reshape [2 3] to [4]: 6 elements, want 4")
	wrapped := fmt.Errorf("cuda: decode: %w", &Error{Msg: "cuda: allocate 256 bytes", Err: errors.New("out of memory")})
	plain := errors.New("not a tensor error")
	same := func(v any) func(any) bool { return func(r any) bool { return r == v } }
	cases := []struct {
		name    string
		panic   func()
		wantErr error          // returned by the entry point
		repanic func(any) bool // when set, the panic goes on with a value it accepts
	}{
		{"no panic", func() {}, nil, nil},
		{"tensor error", func() { panic(te) }, te, nil},
		{"wrapped tensor error", func() { panic(wrapped) }, wrapped, nil},
		{"nil dereference", func() {
			var p *Tensor
			_ = p.Shape // the runtime panics here
		}, nil, func(r any) bool { _, ok := r.(runtime.Error); return ok }},
		{"string", func() { panic("bug") }, nil, same("bug")},
		{"plain error", func() { panic(plain) }, nil, same(plain)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			entry := func() (err error) {
				defer Catch(&err)
				c.panic()
				return nil
			}
			var err error
			r := func() (r any) {
				defer func() { r = recover() }()
				err = entry()
				return nil
			}()
			switch {
			case c.repanic == nil && r != nil:
				t.Fatalf("panic %v went on, want it returned", r)
			case c.repanic == nil && err != c.wantErr:
				t.Fatalf("err = %v, want %v", err, c.wantErr)
			case c.repanic != nil && r == nil:
				t.Fatalf("no panic went on; the entry point returned %v", err)
			case c.repanic != nil && !c.repanic(r):
				t.Fatalf("panic went on with %T %v, want the original value", r, r)
			}
		})
	}
}
