package pdfread

import (
	"errors"
	"fmt"

	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/types"
)

// maxPageTreeDepth bounds the descent of a page tree; real ones are a few
// levels deep.
const maxPageTreeDepth = 64

// Dict resolves o and returns it as a dictionary, nil for the null object.
func (f *File) Dict(o types.Object) (types.Dict, error) {
	o, err := f.Resolve(o)
	if err != nil || o == nil {
		return nil, err
	}
	d, ok := o.(types.Dict)
	if !ok {
		return nil, fmt.Errorf("%T where a dictionary was expected", o)
	}
	return d, nil
}

// Array resolves o and returns it as an array, nil for the null object.
func (f *File) Array(o types.Object) (types.Array, error) {
	o, err := f.Resolve(o)
	if err != nil || o == nil {
		return nil, err
	}
	a, ok := o.(types.Array)
	if !ok {
		return nil, fmt.Errorf("%T where an array was expected", o)
	}
	return a, nil
}

// Int resolves o and returns it as an integer.
func (f *File) Int(o types.Object) (int, error) {
	o, err := f.Resolve(o)
	if err != nil {
		return 0, err
	}
	i, ok := o.(types.Integer)
	if !ok {
		return 0, fmt.Errorf("%T where an integer was expected", o)
	}
	return int(i), nil
}

// Catalog returns the document catalog.
func (f *File) Catalog() (types.Dict, error) {
	if f.Ctx.Root == nil {
		return nil, errors.New("no document catalog")
	}
	root, err := f.Dict(*f.Ctx.Root)
	if err == nil && root == nil {
		err = errors.New("no document catalog")
	}
	return root, err
}

// pageTreeRoot returns the root node of the page tree.
func (f *File) pageTreeRoot() (types.IndirectRef, types.Dict, error) {
	root, err := f.Catalog()
	if err != nil {
		return types.IndirectRef{}, nil, err
	}
	ref, ok := root["Pages"].(types.IndirectRef)
	if !ok {
		return types.IndirectRef{}, nil, errors.New("no page tree")
	}
	node, err := f.Dict(ref)
	if err == nil && node == nil {
		err = errors.New("no page tree")
	}
	return ref, node, err
}

// PageCount returns the number of pages, as the page tree's root says.
func (f *File) PageCount() (int, error) {
	_, node, err := f.pageTreeRoot()
	if err != nil {
		return 0, err
	}
	n, err := f.Int(node["Count"])
	if err != nil {
		return 0, fmt.Errorf("page tree /Count: %w", err)
	}
	return n, nil
}

// Page returns page n (1-based) and its reference. It descends the page
// tree (ISO 32000-2 §7.7.3.2) reading only the nodes before the page on
// its path: the /Count of each intermediate node skips whole subtrees.
func (f *File) Page(n int) (types.Dict, types.IndirectRef, error) {
	ref, node, err := f.pageTreeRoot()
	if err != nil {
		return nil, ref, err
	}
	before := 0 // pages in the subtrees skipped so far
	for depth := 0; ; depth++ {
		if _, isNode := node.Find("Kids"); !isNode {
			if before+1 != n {
				break
			}
			return node, ref, nil
		}
		if depth > maxPageTreeDepth {
			return nil, ref, errors.New("page tree too deep (a loop?)")
		}
		kids, err := f.Array(node["Kids"])
		if err != nil {
			return nil, ref, fmt.Errorf("page tree /Kids: %w", err)
		}
		found := false
		for _, k := range kids {
			kref, ok := k.(types.IndirectRef)
			if !ok {
				return nil, ref, errors.New("page tree kid is not an indirect reference")
			}
			kid, err := f.Dict(kref)
			if err != nil {
				return nil, ref, fmt.Errorf("page tree kid: %w", err)
			}
			if kid == nil {
				continue
			}
			count := 1
			if _, isNode := kid.Find("Kids"); isNode {
				if count, err = f.Int(kid["Count"]); err != nil {
					return nil, ref, fmt.Errorf("page tree /Count: %w", err)
				}
			}
			if before+count >= n {
				ref, node, found = kref, kid, true
				break
			}
			before += count
		}
		if !found {
			break
		}
	}
	return nil, ref, fmt.Errorf("page %d not found in the page tree", n)
}
