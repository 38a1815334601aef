package dualwrite

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"unsafe"
)

// Redacted replaces the value of a sensitive field in every report.
const Redacted = "[redacted]"

// Bounds on one comparison's work and report, so that a large or cyclic
// value can neither stall a shadow read nor flood a log.
const (
	maxDiffs    = 32     // differences listed; the rest are counted
	maxDepth    = 32     // nesting walked
	maxNodes    = 100000 // values visited
	maxValueLen = 200    // bytes of one formatted value
)

// Diff is one difference between the old and the new shape of a value. Path
// locates it ("Name.Given", "Tags[2]", `Attrs["k"]`); Old and New are the
// formatted values read from each origin, or [Redacted].
type Diff struct {
	Path string
	Old  string
	New  string

	whole bool // set by EqualFunc: the reader formats the whole values
}

func (d Diff) String() string {
	path := d.Path
	if path == "" {
		path = "value"
	}
	return fmt.Sprintf("%s: old=%s new=%s", path, d.Old, d.New)
}

// Comparator compares what the old and the new origin returned for one
// read and returns their differences; none means they agree. Values it
// returns under a Path that names a sensitive field are redacted.
type Comparator[T any] func(old, new T) []Diff

// EqualFunc adapts an equality function to a [Comparator]; a difference is
// reported as one Diff of the whole value, formatted with sensitive fields
// redacted.
func EqualFunc[T any](equal func(old, new T) bool) Comparator[T] {
	return func(old, new T) []Diff {
		if equal(old, new) {
			return nil
		}
		return []Diff{{whole: true}}
	}
}

// redactor knows which fields are sensitive: by Go field name anywhere in a
// value, by full path, or by the struct tag `schemashift:"sensitive"`.
type redactor struct {
	names map[string]bool
	root  reflect.Type // the compared type, for tags along a path
}

// active reports whether anything at all is sensitive.
func (r redactor) active() bool {
	return len(r.names) > 0 || hasSensitive(r.root, map[reflect.Type]bool{})
}

func hasSensitive(t reflect.Type, seen map[reflect.Type]bool) bool {
	if t == nil || seen[t] {
		return false
	}
	seen[t] = true
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Array:
		return hasSensitive(t.Elem(), seen)
	case reflect.Map:
		return hasSensitive(t.Key(), seen) || hasSensitive(t.Elem(), seen)
	case reflect.Struct:
		for i := range t.NumField() {
			if t.Field(i).Tag.Get("schemashift") == "sensitive" || hasSensitive(t.Field(i).Type, seen) {
				return true
			}
		}
	}
	return false
}

func (r redactor) sensitiveField(f reflect.StructField) bool {
	return f.Tag.Get("schemashift") == "sensitive" || r.names[f.Name]
}

// sensitivePath reports whether a path (as a comparator wrote it) names a
// sensitive field, by name, by full path prefix, or by tag along the type.
func (r redactor) sensitivePath(path string) bool {
	if path == "" {
		return false
	}
	var prefix string
	t := r.root
	for part := range strings.SplitSeq(path, ".") {
		name := part
		if i := strings.IndexByte(part, '['); i >= 0 {
			name = part[:i]
		}
		if prefix == "" {
			prefix = name
		} else {
			prefix += "." + name
		}
		if r.names[name] || r.names[prefix] {
			return true
		}
		for t != nil && (t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map) {
			t = t.Elem()
		}
		if t == nil || t.Kind() != reflect.Struct {
			t = nil
			continue
		}
		f, ok := t.FieldByName(name)
		if !ok {
			t = nil
			continue
		}
		if f.Tag.Get("schemashift") == "sensitive" {
			return true
		}
		t = f.Type
		for strings.Count(part, "[") > 0 && t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map || t.Kind() == reflect.Pointer) {
			t = t.Elem()
			part = part[strings.IndexByte(part, '[')+1:]
		}
	}
	return false
}

func (r redactor) redact(diffs []Diff) []Diff {
	for i := range diffs {
		if r.sensitivePath(diffs[i].Path) {
			diffs[i].Old, diffs[i].New = Redacted, Redacted
		}
		diffs[i].Old, diffs[i].New = truncate(diffs[i].Old), truncate(diffs[i].New)
	}
	return diffs
}

func truncate(s string) string {
	if len(s) <= maxValueLen {
		return s
	}
	return fmt.Sprintf("%s…(%d bytes)", s[:maxValueLen], len(s))
}

// deepDiff is the default comparator: deep equality (types with an
// Equal(T) bool method, such as time.Time, are compared with it), reporting
// each differing leaf by path.
//
// The project keeps its own walk: reflect.DeepEqual says whether two values
// differ but not where, and go-cmp is documented for tests (it may panic on
// what it cannot compare, such as unexported fields without an option) and
// knows no sensitive field. This one runs in production shadow reads, so it
// is bounded (depth, values visited, differences and bytes reported), safe
// on cycles and unexported fields, and redacts a sensitive field (by name,
// path or tag) before its value reaches a report.
func deepDiff[T any](r redactor) Comparator[T] {
	return func(old, new T) []Diff {
		w := differ{redactor: r, visited: map[visit]bool{}}
		w.walk("", reflect.ValueOf(&old).Elem(), reflect.ValueOf(&new).Elem(), false, 0)
		if w.truncated > 0 {
			w.diffs = append(w.diffs, Diff{Path: "…", Old: fmt.Sprintf("%d more differences", w.truncated)})
		}
		if w.nodes > maxNodes {
			w.diffs = append(w.diffs, Diff{Path: "…", Old: fmt.Sprintf("comparison stopped after %d values", maxNodes)})
		}
		return w.diffs
	}
}

type visit struct {
	a, b unsafe.Pointer
	t    reflect.Type
}

type differ struct {
	redactor
	diffs     []Diff
	truncated int
	nodes     int
	visited   map[visit]bool
}

var errorType = reflect.TypeFor[error]()

func (w *differ) add(path string, old, new reflect.Value, sensitive bool) {
	if len(w.diffs) >= maxDiffs {
		w.truncated++
		return
	}
	d := Diff{Path: path, Old: w.format(old, sensitive), New: w.format(new, sensitive)}
	if sensitive || w.sensitivePath(path) {
		d.Old, d.New = Redacted, Redacted
	}
	w.diffs = append(w.diffs, d)
}

// exported returns v readable through Interface even when it was reached
// through an unexported field, so that its Equal method and formatting
// work. v must be addressable, as everything the differ walks is.
func exported(v reflect.Value) reflect.Value {
	if v.IsValid() && !v.CanInterface() && v.CanAddr() {
		return reflect.NewAt(v.Type(), unsafe.Pointer(v.UnsafeAddr())).Elem()
	}
	return v
}

// format renders a value for a report: sensitive fields inside it redacted,
// bounded in depth and length.
func (r redactor) format(v reflect.Value, sensitive bool) string {
	if !v.IsValid() {
		return "<absent>"
	}
	if sensitive {
		return Redacted
	}
	var b strings.Builder
	r.render(&b, v, 0, map[unsafe.Pointer]bool{})
	return truncate(b.String())
}

func (r redactor) render(b *strings.Builder, v reflect.Value, depth int, seen map[unsafe.Pointer]bool) {
	if b.Len() > maxValueLen || depth > 8 {
		b.WriteString("…")
		return
	}
	v = exported(v)
	if v.CanInterface() {
		if s, ok := v.Interface().(fmt.Stringer); ok && v.Kind() != reflect.Pointer && v.Kind() != reflect.Interface {
			b.WriteString(s.String())
			return
		}
	}
	switch v.Kind() {
	case reflect.String:
		fmt.Fprintf(b, "%q", v.String())
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			b.WriteString("<nil>")
			return
		}
		if v.Kind() == reflect.Pointer {
			if seen[v.UnsafePointer()] {
				b.WriteString("<cycle>")
				return
			}
			seen[v.UnsafePointer()] = true
			b.WriteString("&")
		}
		r.render(b, v.Elem(), depth+1, seen)
	case reflect.Struct:
		t := v.Type()
		b.WriteString("{")
		for i := range t.NumField() {
			if i > 0 {
				b.WriteString(" ")
			}
			b.WriteString(t.Field(i).Name + ":")
			if r.sensitiveField(t.Field(i)) {
				b.WriteString(Redacted)
				continue
			}
			r.render(b, v.Field(i), depth+1, seen)
		}
		b.WriteString("}")
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.IsNil() {
			b.WriteString("[]")
			return
		}
		b.WriteString("[")
		for i := range v.Len() {
			if i > 0 {
				b.WriteString(" ")
			}
			if b.Len() > maxValueLen {
				b.WriteString("…")
				break
			}
			r.render(b, v.Index(i), depth+1, seen)
		}
		b.WriteString("]")
	case reflect.Map:
		b.WriteString("map[")
		keys := v.MapKeys()
		slices.SortFunc(keys, func(x, y reflect.Value) int { return strings.Compare(fmt.Sprint(exported(x)), fmt.Sprint(exported(y))) })
		for i, k := range keys {
			if i > 0 {
				b.WriteString(" ")
			}
			if b.Len() > maxValueLen {
				b.WriteString("…")
				break
			}
			r.render(b, k, depth+1, seen)
			b.WriteString(":")
			r.render(b, v.MapIndex(k), depth+1, seen)
		}
		b.WriteString("]")
	default:
		if v.CanInterface() {
			fmt.Fprintf(b, "%v", v.Interface())
		} else {
			fmt.Fprintf(b, "%v", v)
		}
	}
}

func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

func (w *differ) walk(path string, a, b reflect.Value, sensitive bool, depth int) {
	w.nodes++
	if w.nodes > maxNodes {
		return
	}
	if !a.IsValid() || !b.IsValid() {
		if a.IsValid() != b.IsValid() {
			w.add(path, a, b, sensitive)
		}
		return
	}
	if a.Type() != b.Type() {
		w.add(path, a, b, sensitive)
		return
	}
	a, b = exported(a), exported(b)
	if depth > maxDepth {
		if a.CanInterface() && !reflect.DeepEqual(a.Interface(), b.Interface()) {
			w.add(path, a, b, sensitive)
		}
		return
	}
	if eq, ok := equalMethod(a, b); ok {
		if !eq {
			w.add(path, a, b, sensitive)
		}
		return
	}
	// A pair of references already being compared: cycles and shared
	// structure are walked once.
	switch a.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice:
		if !a.IsNil() && !b.IsNil() {
			k := visit{a.UnsafePointer(), b.UnsafePointer(), a.Type()}
			if w.visited[k] {
				return
			}
			w.visited[k] = true
		}
	}
	switch a.Kind() {
	case reflect.Struct:
		t := a.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			w.walk(join(path, f.Name), a.Field(i), b.Field(i), sensitive || w.sensitiveField(f), depth+1)
		}
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			if a.IsNil() != b.IsNil() {
				w.add(path, a, b, sensitive)
			}
			return
		}
		if a.UnsafePointer() == b.UnsafePointer() {
			return
		}
		w.walk(path, a.Elem(), b.Elem(), sensitive, depth+1)
	case reflect.Interface:
		if a.IsNil() || b.IsNil() {
			if a.IsNil() != b.IsNil() {
				w.add(path, a, b, sensitive)
			}
			return
		}
		if a.Type().Implements(errorType) && a.CanInterface() {
			if ea, eb := a.Interface().(error), b.Interface().(error); sameError(ea, eb) {
				return
			}
		}
		w.walk(path, a.Elem(), b.Elem(), sensitive, depth+1)
	case reflect.Slice, reflect.Array:
		if a.Kind() == reflect.Slice && (a.IsNil() != b.IsNil()) && (a.Len() > 0 || b.Len() > 0) {
			w.add(path, a, b, sensitive)
			return
		}
		n := max(a.Len(), b.Len())
		for i := range n {
			p := fmt.Sprintf("%s[%d]", path, i)
			switch {
			case i >= a.Len():
				w.add(p, reflect.Value{}, b.Index(i), sensitive)
			case i >= b.Len():
				w.add(p, a.Index(i), reflect.Value{}, sensitive)
			default:
				w.walk(p, a.Index(i), b.Index(i), sensitive, depth+1)
			}
			if w.nodes > maxNodes {
				return
			}
		}
	case reflect.Map:
		keys := a.MapKeys()
		for _, k := range b.MapKeys() {
			if !a.MapIndex(k).IsValid() {
				keys = append(keys, k)
			}
		}
		slices.SortFunc(keys, func(x, y reflect.Value) int {
			return strings.Compare(w.format(x, false), w.format(y, false))
		})
		for _, k := range keys {
			key := w.format(k, sensitive)
			w.walk(fmt.Sprintf("%s[%s]", path, key), a.MapIndex(k), b.MapIndex(k), sensitive, depth+1)
			if w.nodes > maxNodes {
				return
			}
		}
	case reflect.Func, reflect.Chan, reflect.UnsafePointer:
		if a.Pointer() != b.Pointer() {
			w.add(path, a, b, sensitive)
		}
	default:
		if !a.Equal(b) {
			w.add(path, a, b, sensitive)
		}
	}
}

// equalMethod uses a type's own Equal(T) bool, as time.Time has.
func equalMethod(a, b reflect.Value) (equal, ok bool) {
	if !a.CanInterface() || !b.CanInterface() {
		return false, false
	}
	m := a.MethodByName("Equal")
	if !m.IsValid() {
		return false, false
	}
	mt := m.Type()
	if mt.NumIn() != 1 || mt.NumOut() != 1 || mt.In(0) != a.Type() || mt.Out(0).Kind() != reflect.Bool {
		return false, false
	}
	if a.Kind() == reflect.Pointer && (a.IsNil() || b.IsNil()) {
		return a.IsNil() == b.IsNil(), true
	}
	return m.Call([]reflect.Value{b})[0].Bool(), true
}

// sameError reports whether two reads failed the same way: one wraps the
// other, or they say the same thing.
func sameError(a, b error) bool {
	return errors.Is(a, b) || errors.Is(b, a) || a.Error() == b.Error()
}
