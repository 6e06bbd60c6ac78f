package pdfread

import (
	"errors"
	"fmt"
	"math"

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

// ErrNoPage is what Page returns, wrapped, for a page number its descent
// of the page tree finds no page for.
var ErrNoPage = errors.New("no such page")

// pageTreeRoot returns the root node of the page tree, which must have
// /Kids: a root that is a page is not a page tree.
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
	if _, isNode := node.Find("Kids"); err == nil && !isNode {
		err = errors.New("its root has no /Kids")
	}
	return ref, node, err
}

// pageKid is a kid of a page tree node: a page, or a node with the number
// of pages its /Count claims.
type pageKid struct {
	ref   types.IndirectRef
	dict  types.Dict
	count int
	page  bool
}

// kids returns the kids of a page tree node.
func (f *File) kids(node types.Dict) (types.Array, error) {
	kids, err := f.Array(node["Kids"])
	if err != nil {
		return nil, fmt.Errorf("/Kids: %w", err)
	}
	return kids, nil
}

// kid reads o, a kid of a page tree node, and the /Count of a node. A
// null kid is an error (free, missing, or beyond what pdfcpu's full parse
// could read, which makes those null: a page lost either way), and so is
// a negative /Count.
func (f *File) kid(o types.Object) (pageKid, error) {
	ref, ok := o.(types.IndirectRef)
	if !ok {
		return pageKid{}, errors.New("a kid is not an indirect reference")
	}
	nr := ref.ObjectNumber.Value()
	d, err := f.Dict(ref)
	if err != nil {
		return pageKid{}, fmt.Errorf("kid %d: %w", nr, err)
	}
	if d == nil {
		return pageKid{}, fmt.Errorf("kid %d is null or cannot be read", nr)
	}
	k := pageKid{ref: ref, dict: d, count: 1}
	if _, isNode := d.Find("Kids"); !isNode {
		k.page = true
		return k, nil
	}
	if k.count, err = f.Int(d["Count"]); err != nil {
		return pageKid{}, fmt.Errorf("node %d: /Count: %w", nr, err)
	}
	if k.count < 0 {
		return pageKid{}, fmt.Errorf("node %d: /Count %d", nr, k.count)
	}
	return k, nil
}

// Page returns page n (1-based) and its reference. It descends the page
// tree (ISO 32000-2 §7.7.3.2) as readers do, reading only the nodes on
// the page's path and the kids before it on each: the /Count of a node
// skips its whole subtree, which is what makes a signature on a large
// document cheap. Those counts are only as true as the file: Pages checks
// that they lead to every page. A page number they lead nowhere is an
// error wrapping ErrNoPage.
func (f *File) Page(n int) (types.Dict, types.IndirectRef, error) {
	_, node, err := f.pageTreeRoot()
	if err != nil {
		return nil, types.IndirectRef{}, err
	}
	if n < 1 {
		return nil, types.IndirectRef{}, fmt.Errorf("page %d: %w", n, ErrNoPage)
	}
	before := 0 // the pages the /Count of the subtrees skipped so far add up to, under n
	for range maxPageTreeDepth + 1 {
		kids, err := f.kids(node)
		if err != nil {
			return nil, types.IndirectRef{}, err
		}
		var next types.Dict
		for _, o := range kids {
			kid, err := f.kid(o)
			if err != nil {
				return nil, types.IndirectRef{}, err
			}
			if kid.count < n-before {
				before += kid.count
				continue
			}
			if kid.page { // and so before+1 == n
				return kid.dict, kid.ref, nil
			}
			next = kid.dict
			break
		}
		if next == nil {
			return nil, types.IndirectRef{}, fmt.Errorf("page %d: %w in the page tree", n, ErrNoPage)
		}
		node = next
	}
	return nil, types.IndirectRef{}, fmt.Errorf("more than %d levels deep", maxPageTreeDepth)
}

// Pages returns the references of the pages in order: the page tree's
// leaves, counted, not the /Count its root claims (no reader makes the
// two agree). It walks the whole tree, reading every node and every page:
// an object met twice (a loop in /Kids, or a page listed twice), a tree
// deeper than Page descends and a null kid are errors. So is a tree whose
// /Count entries would make Page find another page than the walk's, or
// none, for any of them: then Page(i) is the i-th page of the list for
// every i, and Page(len+1) finds none.
func (f *File) Pages() ([]types.IndirectRef, error) {
	rootRef, root, err := f.pageTreeRoot()
	if err != nil {
		return nil, err
	}
	var pages []types.IndirectRef
	seen := map[int]bool{rootRef.ObjectNumber.Value(): true}
	// walk lists the pages under node, into which Page's descent goes
	// for the page numbers in (before, last]: before is what the /Count
	// of the subtrees it skipped add up to, and last is the smallest
	// bound the /Count of node and of its ancestors set (the root's is
	// not read). A page is where Page leads only if it is page before+1
	// and that is within every bound on the way.
	var walk func(node types.Dict, before, last, depth int) error
	walk = func(node types.Dict, before, last, depth int) error {
		if depth > maxPageTreeDepth {
			return fmt.Errorf("more than %d levels deep", maxPageTreeDepth)
		}
		kids, err := f.kids(node)
		if err != nil {
			return err
		}
		for _, o := range kids {
			kid, err := f.kid(o)
			if err != nil {
				return err
			}
			nr := kid.ref.ObjectNumber.Value()
			if seen[nr] {
				return fmt.Errorf("object %d appears twice (a loop in /Kids?)", nr)
			}
			seen[nr] = true
			if kid.page {
				pages = append(pages, kid.ref)
				if n := len(pages); n-1 != before || n > last {
					return fmt.Errorf("%w: they do not lead to page %d", ErrPageCounts, n)
				}
			} else if err := walk(kid.dict, before, min(last, addCapped(before, kid.count)), depth+1); err != nil {
				return err
			}
			before = addCapped(before, kid.count)
		}
		return nil
	}
	if err := walk(root, 0, math.MaxInt, 0); err != nil {
		return nil, err
	}
	return pages, nil
}

// ErrPageCounts is what Pages returns, wrapped, for a page tree whose
// /Count entries would make Page miss a page.
var ErrPageCounts = errors.New("page tree inconsistent: its /Count entries do not match its pages")

// addCapped returns a+b, or math.MaxInt where that would overflow: a and
// b are not negative, and come from the file.
func addCapped(a, b int) int {
	if b > math.MaxInt-a {
		return math.MaxInt
	}
	return a + b
}
