package dualwrite

import (
	"reflect"
	"time"
	"unsafe"
)

var timeType = reflect.TypeFor[time.Time]()

// needsClone reports whether values of t share memory when copied: then
// the caller could change what a shadow goroutine still reads.
func needsClone(t reflect.Type) bool { return refs(t, map[reflect.Type]bool{}) }

func refs(t reflect.Type, seen map[reflect.Type]bool) bool {
	if seen[t] || t == timeType {
		return false
	}
	seen[t] = true
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface, reflect.Chan, reflect.Func, reflect.UnsafePointer:
		return true
	case reflect.Array:
		return refs(t.Elem(), seen)
	case reflect.Struct:
		for i := range t.NumField() {
			if refs(t.Field(i).Type, seen) {
				return true
			}
		}
	}
	return false
}

// deepCopy copies v so that no pointer, slice or map of the copy is shared
// with v (channels and funcs are shared; time.Time is copied as a value).
func deepCopy[T any](v T) T {
	var out T
	c := cloner{seen: map[unsafe.Pointer]reflect.Value{}}
	c.copy(reflect.ValueOf(&out).Elem(), reflect.ValueOf(&v).Elem(), 0)
	return out
}

type cloner struct {
	seen map[unsafe.Pointer]reflect.Value
}

func (c *cloner) copy(dst, src reflect.Value, depth int) {
	dst, src = exported(dst), exported(src)
	if depth > 64 || src.Type() == timeType {
		dst.Set(src)
		return
	}
	switch src.Kind() {
	case reflect.Pointer:
		if src.IsNil() {
			return
		}
		if done, ok := c.seen[src.UnsafePointer()]; ok {
			dst.Set(done)
			return
		}
		n := reflect.New(src.Type().Elem())
		c.seen[src.UnsafePointer()] = n
		c.copy(n.Elem(), src.Elem(), depth+1)
		dst.Set(n)
	case reflect.Slice:
		if src.IsNil() {
			return
		}
		n := reflect.MakeSlice(src.Type(), src.Len(), src.Len())
		for i := range src.Len() {
			c.copy(n.Index(i), src.Index(i), depth+1)
		}
		dst.Set(n)
	case reflect.Array:
		for i := range src.Len() {
			c.copy(dst.Index(i), src.Index(i), depth+1)
		}
	case reflect.Map:
		if src.IsNil() {
			return
		}
		n := reflect.MakeMapWithSize(src.Type(), src.Len())
		it := src.MapRange()
		for it.Next() {
			k, v := c.loose(it.Key(), depth), c.loose(it.Value(), depth)
			n.SetMapIndex(k, v)
		}
		dst.Set(n)
	case reflect.Struct:
		for i := range src.NumField() {
			c.copy(dst.Field(i), src.Field(i), depth+1)
		}
	case reflect.Interface:
		if src.IsNil() {
			return
		}
		dst.Set(c.loose(src.Elem(), depth))
	default:
		dst.Set(src)
	}
}

// loose copies a value that is not addressable (a map entry, an
// interface's content).
func (c *cloner) loose(v reflect.Value, depth int) reflect.Value {
	tmp := reflect.New(v.Type()).Elem()
	tmp.Set(v)
	out := reflect.New(v.Type()).Elem()
	c.copy(out, tmp, depth+1)
	return out
}
