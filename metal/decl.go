package metal

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// kernelDecl is what kernels.metal declares of one kernel: its buffers by index, and the fields
// of its parameter struct (every field 4 bytes), read from the source so that the host side
// (backend.go) and the recording device (record.go) are checked against the kernels themselves.
type kernelDecl struct {
	name string
	// buffers are the [[buffer(i)]] arguments in index order: their names, address spaces
	// ("device" or "constant") and whether the kernel may write them (device, not const).
	buffers []bufferDecl
	// params are the fields of the parameter struct (paramStruct, P_...), the last buffer, in
	// order.
	params      []string
	paramStruct string
	// tgMem reports a [[threadgroup(0)]] argument: the host must size it.
	tgMem bool
	// args are all the arguments in order, as declared (the host emulation calls the kernel).
	args []argDecl
}

// argDecl is one kernel argument: its type as written (address space included), its name, and
// its attribute: buffer, threadgroup (with index), or a thread position attribute.
type argDecl struct {
	typ, name, attr string
	index           int
}

type bufferDecl struct {
	name, space string
	write       bool
}

var (
	kernelRE = regexp.MustCompile(`(?s)kernel\s+void\s+(\w+)\s*\((.*?)\)\s*\{`)
	structRE = regexp.MustCompile(`(?s)struct\s+(P_\w+)\s*\{(.*?)\};`)
	argRE    = regexp.MustCompile(`^(.*?)\s*(\w+)\s*\[\[(\w+)(?:\((\d+)\))?\]\]$`)
	bufferRE = regexp.MustCompile(`^(device|constant)\s+(const\s+)?([\w:]+)\s*([*&])\s*(\w+)\s*\[\[buffer\((\d+)\)\]\]$`)
	fieldRE  = regexp.MustCompile(`^(uint|int|float)\s+(.+)$`)
	commentR = regexp.MustCompile(`//[^\n]*`)
)

// parseKernels reads the kernel declarations of Metal source src.
func parseKernels(src string) (map[string]*kernelDecl, error) {
	src = commentR.ReplaceAllString(src, "")
	structs := map[string][]string{}
	for _, m := range structRE.FindAllStringSubmatch(src, -1) {
		var fields []string
		for _, decl := range strings.Split(m[2], ";") {
			decl = strings.TrimSpace(decl)
			if decl == "" {
				continue
			}
			f := fieldRE.FindStringSubmatch(decl)
			if f == nil {
				return nil, fmt.Errorf("struct %s: field %q is not a uint, int or float", m[1], decl)
			}
			for _, n := range strings.Split(f[2], ",") {
				fields = append(fields, strings.TrimSpace(n))
			}
		}
		structs[m[1]] = fields
	}
	out := map[string]*kernelDecl{}
	for _, m := range kernelRE.FindAllStringSubmatch(src, -1) {
		k := &kernelDecl{name: m[1]}
		byIndex := map[int]bufferDecl{}
		paramIndex := -1
		for _, arg := range splitArgs(m[2]) {
			a := argRE.FindStringSubmatch(arg)
			if a == nil {
				return nil, fmt.Errorf("kernel %s: argument %q has no attribute", k.name, arg)
			}
			idx, _ := strconv.Atoi(a[4])
			k.args = append(k.args, argDecl{typ: a[1], name: a[2], attr: a[3], index: idx})
			switch {
			case strings.Contains(arg, "[[threadgroup(0)]]"):
				k.tgMem = true
			case strings.Contains(arg, "[[buffer("):
				b := bufferRE.FindStringSubmatch(arg)
				if b == nil {
					return nil, fmt.Errorf("kernel %s: cannot read argument %q", k.name, arg)
				}
				i, _ := strconv.Atoi(b[6])
				if _, dup := byIndex[i]; dup {
					return nil, fmt.Errorf("kernel %s: buffer(%d) bound twice", k.name, i)
				}
				byIndex[i] = bufferDecl{name: b[5], space: b[1], write: b[1] == "device" && b[2] == ""}
				if b[1] == "constant" {
					if b[4] != "&" || !strings.HasPrefix(b[3], "P_") {
						return nil, fmt.Errorf("kernel %s: parameters %q, want constant P_...&", k.name, arg)
					}
					paramIndex, k.paramStruct = i, b[3]
				}
			}
		}
		for i := range len(byIndex) {
			b, ok := byIndex[i]
			if !ok {
				return nil, fmt.Errorf("kernel %s: buffer indices not 0..%d", k.name, len(byIndex)-1)
			}
			k.buffers = append(k.buffers, b)
		}
		if paramIndex != len(byIndex)-1 {
			return nil, fmt.Errorf("kernel %s: the parameter struct is not the last buffer", k.name)
		}
		f, ok := structs[k.paramStruct]
		if !ok {
			return nil, fmt.Errorf("kernel %s: no struct %s", k.name, k.paramStruct)
		}
		k.params = f
		if _, dup := out[k.name]; dup {
			return nil, fmt.Errorf("kernel %s declared twice", k.name)
		}
		out[k.name] = k
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no kernels found")
	}
	return out, nil
}

// splitArgs splits a parameter list at the commas outside brackets and parentheses.
func splitArgs(s string) []string {
	var out []string
	depth, start := 0, 0
	for i, c := range s {
		switch c {
		case '(', '[':
			depth++
		case ')', ']':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, strings.Join(strings.Fields(s[start:i]), " "))
				start = i + 1
			}
		}
	}
	if t := strings.Join(strings.Fields(s[start:]), " "); t != "" {
		out = append(out, t)
	}
	return out
}
