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

// PageCount returns the number of pages: the leaves of the page tree,
// counted, not the /Count its root claims: no reader makes the two agree.
func (f *File) PageCount() (int, error) {
	pages, err := f.pageList()
	return len(pages), err
}

// Page returns page n (1-based) and its reference.
func (f *File) Page(n int) (types.Dict, types.IndirectRef, error) {
	pages, err := f.pageList()
	if err != nil {
		return nil, types.IndirectRef{}, err
	}
	if n < 1 || n > len(pages) {
		return nil, types.IndirectRef{}, fmt.Errorf("page %d not found in the page tree of %d pages", n, len(pages))
	}
	d, err := f.Dict(pages[n-1])
	return d, pages[n-1], err
}

// pageList returns the references of the pages in order, walking the
// whole page tree (ISO 32000-2 §7.7.3.2) the first time: every node and
// every page is read, so that a document is accepted only if each of its
// pages can take a signature's widget. An object met twice (a loop in
// /Kids, or a page listed twice) and a tree deeper than maxPageTreeDepth
// are errors, and so is a null kid.
func (f *File) pageList() ([]types.IndirectRef, error) {
	if f.pages != nil || f.pagesErr != nil {
		return f.pages, f.pagesErr
	}
	rootRef, root, err := f.pageTreeRoot()
	if err != nil {
		f.pagesErr = err
		return nil, err
	}
	if _, isNode := root.Find("Kids"); !isNode {
		f.pagesErr = errors.New("its root has no /Kids")
		return nil, f.pagesErr
	}
	pages := []types.IndirectRef{}
	seen := map[int]bool{rootRef.ObjectNumber.Value(): true}
	var walk func(node types.Dict, depth int) error
	walk = func(node types.Dict, depth int) error {
		if depth > maxPageTreeDepth {
			return fmt.Errorf("more than %d levels deep", maxPageTreeDepth)
		}
		kids, err := f.Array(node["Kids"])
		if err != nil {
			return fmt.Errorf("/Kids: %w", err)
		}
		for _, k := range kids {
			kref, ok := k.(types.IndirectRef)
			if !ok {
				return errors.New("a kid is not an indirect reference")
			}
			nr := kref.ObjectNumber.Value()
			if seen[nr] {
				return fmt.Errorf("object %d appears twice (a loop in /Kids?)", nr)
			}
			seen[nr] = true
			kid, err := f.Dict(kref)
			if err != nil {
				return fmt.Errorf("kid %d: %w", nr, err)
			}
			if kid == nil {
				// Free, missing, or beyond what pdfcpu's full parse
				// could read (it makes those null): a page lost either way.
				return fmt.Errorf("kid %d is null or cannot be read", nr)
			}
			if _, isNode := kid.Find("Kids"); !isNode {
				pages = append(pages, kref)
			} else if err := walk(kid, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(root, 0); err != nil {
		f.pagesErr = err
		return nil, err
	}
	f.pages = pages
	return pages, nil
}
