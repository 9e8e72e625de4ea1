package cuda

import (
	"go/ast"
	"go/parser"
	"go/printer"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestKernelParams: every entry point has its parameter count from kernels.cu, and every launch
// in this package's sources (be.kernel(NAME, grid, block, shmem, args...)) passes that many
// arguments: NAME a string literal, or an expression checked against every literal assigned to
// it or returned by the function it calls (smallKernel(rows)). Runs without a device; the
// launches check the same at run time.
func TestKernelParams(t *testing.T) {
	for _, k := range kernelNames {
		if _, ok := kernelParams[k]; !ok {
			t.Errorf("%s: no extern \"C\" declaration found in kernels.cu", k)
		}
	}
	for k, want := range map[string]int{"k_attn_flash_w": 11, "k_attn_group5_h": 13, "k_pick_top": 8} {
		if got := kernelParams[k]; got != want {
			t.Errorf("%s: %d parameters read, want %d", k, got, want)
		}
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	type launch struct {
		pos  token.Pos
		name string // the literal, or the expression's source
		lit  bool
		args int
	}
	var launches []launch
	// expression source -> the string literals assigned to it; "f()" -> those function f returns
	assigned := map[string][]string{}
	src := func(e ast.Expr) string {
		var b strings.Builder
		printer.Fprint(&b, fset, e)
		return b.String()
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		file, err := parser.ParseFile(fset, f, b, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.FuncDecl:
				if n.Body == nil {
					return true
				}
				ast.Inspect(n.Body, func(m ast.Node) bool {
					if r, ok := m.(*ast.ReturnStmt); ok && len(r.Results) == 1 {
						if l, ok := r.Results[0].(*ast.BasicLit); ok && l.Kind == token.STRING {
							s, _ := strconv.Unquote(l.Value)
							assigned[n.Name.Name+"()"] = append(assigned[n.Name.Name+"()"], s)
						}
					}
					return true
				})
			case *ast.AssignStmt:
				for i, r := range n.Rhs {
					if l, ok := r.(*ast.BasicLit); ok && l.Kind == token.STRING && i < len(n.Lhs) {
						s, _ := strconv.Unquote(l.Value)
						assigned[src(n.Lhs[i])] = append(assigned[src(n.Lhs[i])], s)
					}
				}
			case *ast.CallExpr:
				sel, ok := n.Fun.(*ast.SelectorExpr)
				if !ok || sel.Sel.Name != "kernel" || len(n.Args) < 4 || n.Ellipsis.IsValid() {
					return true
				}
				if l, ok := n.Args[0].(*ast.BasicLit); ok && l.Kind == token.STRING {
					s, _ := strconv.Unquote(l.Value)
					launches = append(launches, launch{n.Pos(), s, true, len(n.Args) - 4})
				} else if c, ok := n.Args[0].(*ast.CallExpr); ok {
					if id, ok := c.Fun.(*ast.Ident); ok {
						launches = append(launches, launch{n.Pos(), id.Name + "()", false, len(n.Args) - 4})
					} else {
						launches = append(launches, launch{n.Pos(), src(n.Args[0]), false, len(n.Args) - 4})
					}
				} else {
					launches = append(launches, launch{n.Pos(), src(n.Args[0]), false, len(n.Args) - 4})
				}
			}
			return true
		})
	}
	if len(launches) < 30 {
		t.Fatalf("found %d launches: the scan is broken", len(launches))
	}
	for _, l := range launches {
		names := []string{l.name}
		if !l.lit {
			names = assigned[l.name]
			if len(names) == 0 {
				t.Errorf("%s: launch of %s, to which no kernel name is assigned", fset.Position(l.pos), l.name)
			}
		}
		for _, k := range names {
			if want, ok := kernelParams[k]; !ok || want != l.args {
				t.Errorf("%s: %s (%s) launched with %d arguments, declared with %d", fset.Position(l.pos), l.name, k, l.args, want)
			}
		}
	}
}
