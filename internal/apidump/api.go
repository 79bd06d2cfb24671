package main

import (
	"fmt"
	"go/types"
	"maps"
	"slices"
	"strings"
)

// printer writes the features of one package.
type printer struct {
	pkg    *types.Package
	module string // types of the module's packages are written relative to it
	prefix string // "pkg stream, "
	lines  []string
}

// packageAPI returns the features of pkg, a package of module.
func packageAPI(pkg *types.Package, module string) []string {
	rel := strings.TrimPrefix(strings.TrimPrefix(pkg.Path(), module), "/")
	if rel == "" {
		rel = pkg.Name()
	}
	p := &printer{pkg: pkg, module: module, prefix: "pkg " + rel + ", "}
	p.add("pkg " + rel)
	scope := pkg.Scope()
	for _, name := range scope.Names() {
		obj := scope.Lookup(name)
		if !obj.Exported() {
			continue
		}
		switch obj := obj.(type) {
		case *types.Const:
			p.add(p.prefix + "const " + name + " " + p.typ(obj.Type()) + " = " + obj.Val().ExactString())
		case *types.Var:
			p.add(p.prefix + "var " + name + " " + p.typ(obj.Type()))
		case *types.Func:
			sig := obj.Type().(*types.Signature)
			p.add(p.prefix + "func " + name + p.tparams(sig.TypeParams()) + p.signature(sig))
		case *types.TypeName:
			p.typeName(obj)
		}
	}
	return p.lines
}

func (p *printer) add(line string) { p.lines = append(p.lines, line) }

// typeName writes the features of a type: its kind, its fields, its
// methods, whether it is comparable.
func (p *printer) typeName(obj *types.TypeName) {
	name := obj.Name()
	if alias, ok := obj.Type().(*types.Alias); ok {
		p.add(p.prefix + "type " + name + p.tparams(alias.TypeParams()) + " = " + p.typ(types.Unalias(alias)))
		return
	}
	named, ok := obj.Type().(*types.Named)
	if !ok {
		p.add(p.prefix + "type " + name + " " + p.typ(obj.Type()))
		return
	}
	decl := "type " + name + p.tparams(named.TypeParams())
	self := name + p.targs(named.TypeParams())
	switch u := named.Underlying().(type) {
	case *types.Interface:
		sealed := false
		for m := range u.Methods() {
			sealed = sealed || !m.Exported()
		}
		if !sealed {
			p.add(p.prefix + decl + " " + p.iface(u))
			return
		}
		p.add(p.prefix + decl + " interface, unexported methods")
		for m := range u.Methods() {
			if m.Exported() {
				p.add(p.prefix + decl + " interface, " + m.Name() + p.signature(m.Signature()))
			}
		}
		if u.IsMethodSet() {
			return
		}
		for i := range u.NumEmbeddeds() {
			if t := u.EmbeddedType(i); !isInterface(t) {
				p.add(p.prefix + decl + " interface, type " + p.typ(t))
			}
		}
		return
	case *types.Struct:
		p.add(p.prefix + decl + " struct")
		for _, f := range fields(named, p.pkg) {
			p.add(p.prefix + decl + " struct, " + f.Name() + " " + p.typ(f.Type()))
		}
		if types.Comparable(named) {
			p.add(p.prefix + decl + " comparable")
		}
	case *types.Array:
		p.add(p.prefix + decl + " " + p.typ(u))
		if types.Comparable(named) {
			p.add(p.prefix + decl + " comparable")
		}
	default:
		p.add(p.prefix + decl + " " + p.typ(u))
	}
	for _, recv := range []types.Type{named, types.NewPointer(named)} {
		r := self
		if _, ok := recv.(*types.Pointer); ok {
			r = "*" + self
		}
		ms := types.NewMethodSet(recv)
		for sel := range ms.Methods() {
			if m := sel.Obj(); m.Exported() {
				p.add(p.prefix + "method (" + r + ") " + m.Name() + p.signature(sel.Type().(*types.Signature)))
			}
		}
	}
}

func isInterface(t types.Type) bool {
	_, ok := t.Underlying().(*types.Interface)
	return ok
}

// fields returns the exported fields a selector on a value of type t
// reaches, promoted ones included, by name.
func fields(t types.Type, pkg *types.Package) []*types.Var {
	names := map[string]bool{}
	seen := map[types.Type]bool{}
	var walk func(t types.Type)
	walk = func(t types.Type) {
		if ptr, ok := t.(*types.Pointer); ok {
			t = ptr.Elem()
		}
		if seen[t] {
			return
		}
		seen[t] = true
		s, ok := t.Underlying().(*types.Struct)
		if !ok {
			return
		}
		for f := range s.Fields() {
			if f.Exported() {
				names[f.Name()] = true
			}
			if f.Embedded() {
				walk(f.Type())
			}
		}
	}
	walk(t)
	var out []*types.Var
	for _, n := range slices.Sorted(maps.Keys(names)) {
		obj, _, _ := types.LookupFieldOrMethod(t, false, pkg, n)
		if v, ok := obj.(*types.Var); ok && v.IsField() {
			out = append(out, v)
		}
	}
	return out
}

// tparams writes a list of type parameters with their constraints:
// [$0 any, $1 Aggregator[$0, $1]].
func (p *printer) tparams(l *types.TypeParamList) string {
	if l.Len() == 0 {
		return ""
	}
	var parts []string
	for tp := range l.TypeParams() {
		parts = append(parts, p.typ(tp)+" "+p.typ(tp.Constraint()))
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// targs writes a generic type's parameters as its arguments: [$0, $1].
func (p *printer) targs(l *types.TypeParamList) string {
	if l.Len() == 0 {
		return ""
	}
	var parts []string
	for tp := range l.TypeParams() {
		parts = append(parts, p.typ(tp))
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// signature writes a function's parameters and results, without names.
func (p *printer) signature(sig *types.Signature) string {
	var b strings.Builder
	b.WriteString("(")
	for i, v := range slices.Collect(sig.Params().Variables()) {
		if i > 0 {
			b.WriteString(", ")
		}
		if sig.Variadic() && i == sig.Params().Len()-1 {
			b.WriteString("..." + p.typ(v.Type().(*types.Slice).Elem()))
			continue
		}
		b.WriteString(p.typ(v.Type()))
	}
	b.WriteString(")")
	switch res := sig.Results(); res.Len() {
	case 0:
	case 1:
		b.WriteString(" " + p.typ(res.At(0).Type()))
	default:
		var parts []string
		for v := range res.Variables() {
			parts = append(parts, p.typ(v.Type()))
		}
		b.WriteString(" (" + strings.Join(parts, ", ") + ")")
	}
	return b.String()
}

// iface writes an interface type with its whole method set, sorted, and
// its type terms: interface { M(int) error; ~int | ~string }; any for the
// empty interface.
func (p *printer) iface(t *types.Interface) string {
	var parts []string
	for m := range t.Methods() {
		parts = append(parts, m.Name()+p.signature(m.Signature()))
	}
	slices.Sort(parts)
	var terms []string
	for i := range t.NumEmbeddeds() {
		if e := t.EmbeddedType(i); !isInterface(e) || isComparable(e) {
			terms = append(terms, p.typ(e))
		}
	}
	slices.Sort(terms)
	parts = append(parts, terms...)
	if len(parts) == 0 {
		return "any"
	}
	return "interface { " + strings.Join(parts, "; ") + " }"
}

func isComparable(t types.Type) bool {
	n, ok := t.(*types.Named)
	return ok && n.Obj().Pkg() == nil && n.Obj().Name() == "comparable"
}

// typ writes a type: the module's named types relative to the module,
// others by their import path, aliases as what they stand for, type
// parameters by their index.
func (p *printer) typ(t types.Type) string {
	switch t := t.(type) {
	case *types.Basic:
		switch t.Kind() {
		case types.Byte:
			return "uint8"
		case types.Rune:
			return "int32"
		}
		return t.Name()
	case *types.Alias:
		return p.typ(types.Unalias(t))
	case *types.Named:
		obj := t.Obj()
		var b strings.Builder
		switch {
		case obj.Pkg() == nil: // error, comparable
		case obj.Pkg() == p.pkg:
		case strings.HasPrefix(obj.Pkg().Path(), p.module+"/"):
			b.WriteString(strings.TrimPrefix(obj.Pkg().Path(), p.module+"/") + ".")
		default:
			b.WriteString(obj.Pkg().Path() + ".")
		}
		b.WriteString(obj.Name())
		if args := t.TypeArgs(); args.Len() > 0 {
			var parts []string
			for a := range args.Types() {
				parts = append(parts, p.typ(a))
			}
			b.WriteString("[" + strings.Join(parts, ", ") + "]")
		}
		return b.String()
	case *types.TypeParam:
		return fmt.Sprintf("$%d", t.Index())
	case *types.Pointer:
		return "*" + p.typ(t.Elem())
	case *types.Slice:
		return "[]" + p.typ(t.Elem())
	case *types.Array:
		return fmt.Sprintf("[%d]%s", t.Len(), p.typ(t.Elem()))
	case *types.Map:
		return "map[" + p.typ(t.Key()) + "]" + p.typ(t.Elem())
	case *types.Chan:
		elem := p.typ(t.Elem())
		switch t.Dir() {
		case types.SendOnly:
			return "chan<- " + elem
		case types.RecvOnly:
			return "<-chan " + elem
		}
		if c, ok := t.Elem().(*types.Chan); ok && c.Dir() == types.RecvOnly {
			elem = "(" + elem + ")"
		}
		return "chan " + elem
	case *types.Signature:
		return "func" + p.signature(t)
	case *types.Struct:
		var parts []string
		for i := range t.NumFields() {
			f := t.Field(i)
			s := f.Name() + " " + p.typ(f.Type())
			if f.Embedded() {
				s = "embedded " + p.typ(f.Type())
			}
			if tag := t.Tag(i); tag != "" {
				s += fmt.Sprintf(" %q", tag)
			}
			parts = append(parts, s)
		}
		return "struct{" + strings.Join(parts, "; ") + "}"
	case *types.Interface:
		return p.iface(t)
	case *types.Union:
		var parts []string
		for term := range t.Terms() {
			s := p.typ(term.Type())
			if term.Tilde() {
				s = "~" + s
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, " | ")
	case *types.Tuple:
		var parts []string
		for v := range t.Variables() {
			parts = append(parts, p.typ(v.Type()))
		}
		return "(" + strings.Join(parts, ", ") + ")"
	}
	return t.String()
}
