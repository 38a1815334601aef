package dualwrite

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// Redacted replaces the value of a sensitive field in every report.
const Redacted = "[redacted]"

// maxDiffs bounds one comparison's report; the rest is summarised.
const maxDiffs = 32

// maxDepth bounds the walk into nested or cyclic values.
const maxDepth = 32

// Diff is one difference between the old and the new shape of a value. Path
// locates it ("Name.Given", "Tags[2]", `Attrs["k"]`); Old and New are the
// formatted values read from each origin, or [Redacted].
type Diff struct {
	Path string
	Old  string
	New  string
}

func (d Diff) String() string {
	path := d.Path
	if path == "" {
		path = "value"
	}
	return fmt.Sprintf("%s: old=%s new=%s", path, d.Old, d.New)
}

// Comparator compares what the old and the new origin returned for one
// read and returns their differences; none means they agree. Paths it
// returns are redacted like the default comparator's when they name a
// sensitive field.
type Comparator[T any] func(old, new T) []Diff

// EqualFunc adapts an equality function to a [Comparator]; a difference is
// reported as a single Diff of the whole value.
func EqualFunc[T any](equal func(old, new T) bool) Comparator[T] {
	return func(old, new T) []Diff {
		if equal(old, new) {
			return nil
		}
		return []Diff{{Old: fmt.Sprint(old), New: fmt.Sprint(new)}}
	}
}

// redactor knows which fields are sensitive: by Go field name anywhere in a
// value, by full path, or by the struct tag `schemashift:"sensitive"`.
type redactor struct {
	names map[string]bool
}

func (r redactor) sensitivePath(path string) bool {
	if len(r.names) == 0 {
		return false
	}
	if r.names[path] {
		return true
	}
	// Any component of the path, without index suffixes.
	for part := range strings.SplitSeq(path, ".") {
		if i := strings.IndexByte(part, '['); i >= 0 {
			part = part[:i]
		}
		if r.names[part] {
			return true
		}
	}
	for name := range r.names {
		if strings.HasPrefix(path, name+".") || strings.HasPrefix(path, name+"[") {
			return true
		}
	}
	return false
}

func (r redactor) redact(diffs []Diff) []Diff {
	for i := range diffs {
		if r.sensitivePath(diffs[i].Path) {
			diffs[i].Old, diffs[i].New = Redacted, Redacted
		}
	}
	return diffs
}

// deepDiff is the default comparator: deep equality (types with an
// Equal(T) bool method, such as time.Time, are compared with it), reporting
// each differing leaf by path.
func deepDiff[T any](r redactor) Comparator[T] {
	return func(old, new T) []Diff {
		w := differ{redactor: r}
		w.walk("", reflect.ValueOf(&old).Elem(), reflect.ValueOf(&new).Elem(), false, 0)
		if w.truncated > 0 {
			w.diffs = append(w.diffs, Diff{Path: "…", Old: fmt.Sprintf("%d more differences", w.truncated), New: ""})
		}
		return w.diffs
	}
}

type differ struct {
	redactor
	diffs     []Diff
	truncated int
}

var errorType = reflect.TypeFor[error]()

func (w *differ) add(path string, old, new reflect.Value, sensitive bool) {
	if len(w.diffs) >= maxDiffs {
		w.truncated++
		return
	}
	d := Diff{Path: path, Old: format(old), New: format(new)}
	if sensitive || w.sensitivePath(path) {
		d.Old, d.New = Redacted, Redacted
	}
	w.diffs = append(w.diffs, d)
}

func format(v reflect.Value) string {
	if !v.IsValid() {
		return "<absent>"
	}
	if v.Kind() == reflect.String {
		return fmt.Sprintf("%q", v.String())
	}
	if v.CanInterface() {
		return fmt.Sprintf("%+v", v.Interface())
	}
	return fmt.Sprintf("%+v", v)
}

func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

func (w *differ) walk(path string, a, b reflect.Value, sensitive bool, depth int) {
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
	if depth > maxDepth {
		if !reflect.DeepEqual(valueOrNil(a), valueOrNil(b)) {
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
	switch a.Kind() {
	case reflect.Struct:
		t := a.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			s := sensitive || f.Tag.Get("schemashift") == "sensitive" || w.names[f.Name]
			w.walk(join(path, f.Name), a.Field(i), b.Field(i), s, depth+1)
		}
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			if a.IsNil() != b.IsNil() {
				w.add(path, a, b, sensitive)
			}
			return
		}
		if a.Pointer() == b.Pointer() {
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
		}
	case reflect.Map:
		keys := a.MapKeys()
		for _, k := range b.MapKeys() {
			if !a.MapIndex(k).IsValid() {
				keys = append(keys, k)
			}
		}
		slices.SortFunc(keys, func(x, y reflect.Value) int { return strings.Compare(format(x), format(y)) })
		for _, k := range keys {
			w.walk(fmt.Sprintf("%s[%s]", path, format(k)), a.MapIndex(k), b.MapIndex(k), sensitive, depth+1)
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

func valueOrNil(v reflect.Value) any {
	if v.CanInterface() {
		return v.Interface()
	}
	return nil
}

// equalMethod uses a type's own Equal(T) bool, as time.Time has.
func equalMethod(a, b reflect.Value) (equal, ok bool) {
	if !a.CanInterface() {
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
