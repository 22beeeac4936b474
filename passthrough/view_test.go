package passthrough

import (
	"testing"
)

func TestNewView(t *testing.T) {
	a, b := newLU(t, "a", nil), newLU(t, "b", nil)
	v := mustView(t, Mapping{LUN: 9, LU: a}, Mapping{LUN: 2, LU: b, ReadOnly: true})
	if v.Len() != 2 {
		t.Fatalf("len %d", v.Len())
	}
	if m := v.Mappings(); m[0].LUN != 2 || m[1].LUN != 9 {
		t.Fatalf("not sorted: %+v", m)
	}
	if m, ok := v.Lookup(2); !ok || m.LU != b || !m.ReadOnly {
		t.Fatalf("Lookup(2) = %+v %v", m, ok)
	}
	if _, ok := v.Lookup(3); ok {
		t.Fatal("Lookup(3) found something")
	}
	if !v.Equal(mustView(t, Mapping{LUN: 2, LU: b, ReadOnly: true}, Mapping{LUN: 9, LU: a})) {
		t.Fatal("equal views differ")
	}
	if v.Equal(mustView(t, Mapping{LUN: 2, LU: b}, Mapping{LUN: 9, LU: a})) {
		t.Fatal("views differing in access are equal")
	}
	for name, maps := range map[string][]Mapping{
		"duplicate LUN":    {{LUN: 1, LU: a}, {LUN: 1, LU: b}},
		"LU twice":         {{LUN: 1, LU: a}, {LUN: 2, LU: a}},
		"no LU":            {{LUN: 1}},
		"LUN out of range": {{LUN: 1 << 14, LU: a}},
	} {
		if _, err := NewView(maps...); err == nil {
			t.Errorf("%s: NewView succeeded", name)
		}
	}
	// Large views use the binary search.
	var maps []Mapping
	for i := range 40 {
		maps = append(maps, Mapping{LUN: uint64(100 - 2*i), LU: newLU(t, "x", newDisk(t, "x"))})
	}
	big := mustView(t, maps...)
	for i := range 40 {
		if m, ok := big.Lookup(uint64(100 - 2*i)); !ok || m.LU != maps[i].LU {
			t.Fatalf("Lookup(%d) in a large view", 100-2*i)
		}
	}
	if _, ok := big.Lookup(21); ok {
		t.Fatal("Lookup(21) found something in a large view")
	}
}
