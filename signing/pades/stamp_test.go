package pades_test

import (
	"fmt"
	"html"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/parapheur/parapheur/signing/internal/pdftest"
	"github.com/parapheur/parapheur/signing/pades"
)

// shownCorner returns how far rect r's corner nearest the bottom-left of
// the page as shown lies from that corner, along the shown page's bottom
// (u) and left (v) edges, for a page of visible box b turned by rotate.
func shownCorner(r, b [4]float64, rotate int) (u, v float64) {
	switch rotate {
	case 90:
		return r[1] - b[1], b[2] - r[2]
	case 180:
		return b[2] - r[2], b[3] - r[3]
	case 270:
		return b[3] - r[3], r[0] - b[0]
	}
	return r[0] - b[0], r[1] - b[1]
}

// TestStampOnVisiblePage signs pages whose boxes do not start at 0,0,
// that are turned, cropped, inherit their boxes, or are smaller than a
// mark: every mark lies inside the page as shown (its crop box clipped to
// its media box, which pdfcpu resolves independently), the first at the
// bottom-left corner as the reader sees it, none over another, and its
// text reads upright (mupdf's text direction, after the page's turn).
func TestStampOnVisiblePage(t *testing.T) {
	dir := t.TempDir()
	tool := func(name, header string) string {
		src := filepath.Join(dir, name+".txt")
		content := "%%Font Helv Helvetica\nBT /Helv 12 Tf 72 72 Td (Texte) Tj ET\n"
		if err := os.WriteFile(src, []byte(header+content), 0o644); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, name+".pdf")
		pdftest.Run(t, "mutool", "create", "-o", path, src)
		return path
	}
	built := func(name string, bodies ...string) string {
		path := filepath.Join(dir, name+".pdf")
		if err := os.WriteFile(path, pdftest.Classic(bodies...), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	files := map[string]string{
		"offset":    tool("offset", "%%MediaBox 300 400 895 1242\n"),
		"negative":  tool("negative", "%%MediaBox -297 -421 298 421\n"),
		"rotate90":  tool("rotate90", "%%MediaBox 0 0 595 842\n%%Rotate 90\n"),
		"rotate180": tool("rotate180", "%%MediaBox 50 60 645 902\n%%Rotate 180\n"),
		"rotate270": tool("rotate270", "%%MediaBox 0 0 595 842\n%%Rotate 270\n"),
		"small":     tool("small", "%%MediaBox 10 10 160 110\n"),
		"inherited": built("inherited",
			"<< /Type /Catalog /Pages 2 0 R >>",
			"<< /Type /Pages /Kids [3 0 R] /Count 1 /MediaBox [100 200 700 1000] /Rotate -90 >>",
			"<< /Type /Page /Parent 2 0 R /CropBox [150 260 650 900] >>"),
		"cropped": built("cropped",
			"<< /Type /Catalog /Pages 2 0 R >>",
			"<< /Type /Pages /Kids [3 0 R] /Count 1 /CropBox [120 140 520 640] >>",
			"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Rotate 450 >>"),
		"no-media-box": built("no-media-box",
			"<< /Type /Catalog /Pages 2 0 R >>",
			"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
			"<< /Type /Page /Parent 2 0 R >>"),
	}
	ca, caFile := testCA(t)
	const marks = 4
	for name, in := range files {
		t.Run(name, func(t *testing.T) {
			for i := range marks {
				out := filepath.Join(t.TempDir(), fmt.Sprintf("signed%d.pdf", i))
				signFile(t, ca, in, out, fmt.Sprintf("Signer %d", i+1), &pades.Stamp{Page: 1, Slot: i, Name: fmt.Sprintf("Signer %d", i+1), Role: "Témoin"})
				in = out
			}
			if name == "rotate90" || name == "offset" {
				pdftest.Validate(t, in, pdftest.Expect{Signatures: marks, CAFile: caFile})
			}
			ps := pdftest.Stamps(t, in, 1)
			if len(ps.Rects) != marks {
				t.Fatalf("%d signature widgets, want %d", len(ps.Rects), marks)
			}
			for i, r := range ps.Rects {
				if !pdftest.Inside(r, ps.Box) {
					t.Errorf("mark %d at %v is not inside the page's visible box %v", i+1, r, ps.Box)
				}
				for j, o := range ps.Rects[:i] {
					if pdftest.Overlap(r, o) {
						t.Errorf("marks %d %v and %d %v overlap", j+1, o, i+1, r)
					}
				}
			}
			rotate := (ps.Rotate%360 + 360) % 360
			if rotate%90 != 0 {
				rotate = 0
			}
			if u, v := shownCorner(ps.Rects[0], ps.Box, rotate); u < 0 || v < 0 || u > 30 || v > 30 {
				t.Errorf("the first mark %v is %.1f, %.1f points from the bottom-left corner of the page as shown (box %v, turned %d°)", ps.Rects[0], u, v, ps.Box, rotate)
			}
			// mupdf shows the page turned, marks included: each mark's
			// first line runs left to right on the shown page, the first
			// mark's at its bottom-left (stext's y grows downwards).
			stext := pdftest.Run(t, "mutool", "draw", "-F", "stext", "-o", "-", in, "1")
			page := regexp.MustCompile(`<page [^>]*width="([0-9.]+)" height="([0-9.]+)"`).FindStringSubmatch(stext)
			if page == nil {
				t.Fatalf("mupdf shows no page:\n%.2000s", stext)
			}
			var height float64
			fmt.Sscan(page[2], &height)
			found := map[string]bool{}
			for _, l := range regexp.MustCompile(`(?s)<line bbox="([^"]*)"[^>]*dir="([^"]*)">(.*?)</line>`).FindAllStringSubmatch(stext, -1) {
				var text strings.Builder
				for _, c := range regexp.MustCompile(`c="([^"]*)"`).FindAllStringSubmatch(l[3], -1) {
					text.WriteString(c[1])
				}
				if !strings.HasPrefix(text.String(), "Signer ") {
					continue
				}
				found[text.String()] = true
				if l[2] != "1 0" {
					t.Errorf("%q runs in direction %q on the shown page, not left to right (\"1 0\")", text.String(), l[2])
				}
				var x0, y0, x1, y1 float64
				fmt.Sscan(l[1], &x0, &y0, &x1, &y1)
				if text.String() == "Signer 1" && (x0 > 40 || y1 < height-90) {
					t.Errorf("mupdf shows %q at %s on a page %s high, not at its bottom-left", text.String(), l[1], page[2])
				}
			}
			for i := range marks {
				if !found[fmt.Sprintf("Signer %d", i+1)] {
					t.Errorf("mupdf shows no mark of Signer %d:\n%.3000s", i+1, stext)
				}
			}
		})
	}
}

// TestStampShowsWholeLines: the mark's font (Helvetica, Windows-1252)
// lacks some letters of real names; each is shown as its base letter,
// never dropped, and no line, wide capitals and digits included, runs
// out of the mark.
func TestStampShowsWholeLines(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "page.txt")
	if err := os.WriteFile(src, []byte("%%MediaBox 0 0 595 842\nBT /Helv 12 Tf 72 72 Td (Texte) Tj ET\n%%Font Helv Helvetica\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(dir, "page.pdf")
	pdftest.Run(t, "mutool", "create", "-o", in, src)
	ca, _ := testCA(t)
	names := map[string]string{ // as signed: as shown
		"Zoë Øster Łukasz Żółć":   "Zoë Øster Lukasz Zólc",
		"Frédéric Ngô Quang Hưng": "Frédéric Ngô Quang Hung",
		"王 Wei":                   "? Wei",
	}
	reason := "Demande EQ4J7N7BQPBWREUWNL27W6"
	slot := 0
	for name := range names {
		out := filepath.Join(dir, fmt.Sprintf("signed%d.pdf", slot))
		signFile(t, ca, in, out, name, &pades.Stamp{Page: 1, Slot: slot, Name: name, Role: "Signataire", Reason: reason})
		in, slot = out, slot+1
	}
	rects := pdftest.Stamps(t, in, 1).Rects
	stext := pdftest.Run(t, "mutool", "draw", "-F", "stext", "-o", "-", in, "1")
	type line struct {
		text string
		box  [4]float64 // x0 y0 x1 y1
	}
	var lines []line
	for _, l := range regexp.MustCompile(`(?s)<line bbox="([^"]*)"[^>]*>(.*?)</line>`).FindAllStringSubmatch(stext, -1) {
		var text strings.Builder
		for _, c := range regexp.MustCompile(`c="([^"]*)"`).FindAllStringSubmatch(l[2], -1) {
			text.WriteString(html.UnescapeString(c[1]))
		}
		var b [4]float64
		fmt.Sscan(l[1], &b[0], &b[1], &b[2], &b[3])
		lines = append(lines, line{text.String(), b})
	}
	shows := func(text string) bool { return slices.ContainsFunc(lines, func(l line) bool { return l.text == text }) }
	for name, want := range names {
		if !shows(want) {
			t.Errorf("%q is not shown as %q; lines shown: %v", name, want, lines)
		}
	}
	// The page is not turned and starts at 0,0: mupdf's x are the page's.
	reasons := 0
	for _, l := range lines {
		if l.text != reason {
			continue
		}
		reasons++
		for _, r := range rects {
			if l.box[0] >= r[0] && l.box[0] <= r[2] && l.box[2] > r[2]+0.5 {
				t.Errorf("%q ends at x %.1f, past its mark's right edge %.1f", l.text, l.box[2], r[2])
			}
		}
	}
	if reasons != len(names) {
		t.Errorf("the reason is shown whole in %d marks, want %d; lines shown: %v", reasons, len(names), lines)
	}
}
