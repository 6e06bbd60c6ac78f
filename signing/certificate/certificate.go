// Package certificate builds an envelope's certificate of completion
// ("Certificat de réalisation", SPEC §5): a PDF on A4 in the envelope's
// language naming the envelope, its sender and how the submission was
// authenticated, each document's original and final SHA-256 (FIPS 180-4),
// each recipient's role, authentication, client and times, each one-time
// certificate's serial, the whole audit trail and a verification link.
//
// The audit trail is also embedded as a JSON file (audit-ENVELOPEID.json)
// the way PDF/A-3 associates files (ISO 19005-3, ISO 32000-2 §14.13): a
// file specification in the catalog's /Names /EmbeddedFiles tree and in its
// /AF array with /AFRelationship /Data.
//
// The package is pure: the envelope, the trail, the zone and the time of
// issue all come in, and the same input gives the same bytes, so a
// certificate rebuilt after a crash is identical to the first one.
package certificate

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"codeberg.org/go-pdf/fpdf"
	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/gomono"
	"golang.org/x/image/font/gofont/goregular"

	"github.com/parapheur/parapheur/signing/verdict"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/audit"
)

// Input is everything the certificate says.
type Input struct {
	// Envelope is the envelope whose steps are all done.
	Envelope *workflow.Envelope
	// Trail is the envelope's whole audit trail; it must verify and end at
	// Envelope.Audit.
	Trail []audit.Record
	// Location is the configured time zone; every time is written in it
	// and in UTC beside it. Nil means UTC.
	Location *time.Location
	// VerifyURL is the page where anyone may check the signed documents
	// (PUBLIC_URL/verify).
	VerifyURL string
	// Organisation names the organisation that runs the gateway.
	Organisation string
	// Now is when the certificate is issued: the PDF's creation date.
	Now time.Time
}

// AttachmentName is the file name of the audit trail embedded in the
// certificate of envelope id, the same name as the archivists' copy.
func AttachmentName(envelopeID string) string { return "audit-" + envelopeID + ".json" }

// fileNames start the certificate's file name in each language.
var fileNames = map[string]string{"fr": "certificat-", "en": "certificate-"}

// FileName is the file name of the certificate of envelope id, in the
// envelope's language lang, as the final mails attach it and the pages
// serve it: certificat-ID.pdf, certificate-ID.pdf.
func FileName(envelopeID, lang string) (string, error) {
	prefix, ok := fileNames[lang]
	if !ok {
		return "", fmt.Errorf("certificate: envelope %s has language %q; want fr or en", envelopeID, lang)
	}
	return prefix + envelopeID + ".pdf", nil
}

// Build makes the certificate of completion of in.Envelope.
func Build(in Input) ([]byte, error) {
	switch {
	case in.Envelope == nil:
		return nil, errors.New("certificate: no envelope")
	case in.Now.IsZero():
		return nil, errors.New("certificate: no time of issue (Input.Now)")
	}
	words, ok := vocabulary[in.Envelope.Language]
	if !ok {
		return nil, fmt.Errorf("certificate: envelope %s has language %q; want fr or en", in.Envelope.ID, in.Envelope.Language)
	}
	if err := audit.VerifyEnd(in.Trail, in.Envelope.Audit); err != nil {
		return nil, fmt.Errorf("certificate: the audit trail of envelope %s does not verify: %w", in.Envelope.ID, err)
	}
	d := newDocument(in, readerZone(in.Location, in.Now), words)
	d.render()
	var buf bytes.Buffer
	if err := d.pdf.Output(&buf); err != nil {
		return nil, fmt.Errorf("certificate: writing the PDF of envelope %s: %w", in.Envelope.ID, err)
	}
	return attach(buf.Bytes(), AttachmentName(in.Envelope.ID), audit.JSON(in.Trail), in.Now)
}

// Page geometry in millimetres: A4 portrait.
const (
	pageW, pageH = 210.0, 297.0
	margin       = 18.0
	contentW     = pageW - 2*margin
	bottom       = pageH - 20 // the footer lives below
	pad          = 1.2        // inner margin of table cells
)

// Font families registered from the Go fonts.
const (
	sans = "gosans"
	mono = "gomono"
)

// document is one certificate being laid out.
type document struct {
	pdf   *fpdf.Fpdf
	in    Input
	env   *workflow.Envelope
	loc   *time.Location
	words words
	// pendingHeading is the section heading not drawn yet.
	pendingHeading string
}

func newDocument(in Input, loc *time.Location, w words) *document {
	pdf := fpdf.NewCustom(&fpdf.InitType{OrientationStr: "P", UnitStr: "mm", Size: fpdf.SizeType{Wd: pageW, Ht: pageH}})
	// fpdf's subsetting rewrites the glyph indices of composite glyphs
	// (accented letters) in the bytes it is given: each build gets its own
	// copy, or the second certificate of a process would be made from the
	// first one's edits (and concurrent builds would race).
	pdf.AddUTF8FontFromBytes(sans, "", bytes.Clone(goregular.TTF))
	pdf.AddUTF8FontFromBytes(sans, "B", bytes.Clone(gobold.TTF))
	pdf.AddUTF8FontFromBytes(mono, "", bytes.Clone(gomono.TTF))
	pdf.SetMargins(margin, margin, margin)
	pdf.SetAutoPageBreak(false, 0) // rows break pages themselves, see row
	pdf.SetCellMargin(pad)
	// Same input, same bytes: fixed dates and sorted resource dictionaries.
	pdf.SetCreationDate(in.Now)
	pdf.SetModificationDate(in.Now)
	pdf.SetCatalogSort(true)
	pdf.SetCompression(true)
	pdf.SetTitle(printable(w.title+" — "+in.Envelope.ID), true)
	pdf.SetSubject(printable(in.Envelope.Title), true)
	pdf.SetAuthor(printable(in.Organisation), true)
	pdf.SetCreator("parapheur", true)
	pdf.SetLang(in.Envelope.Language)
	pdf.AliasNbPages("{nb}")
	d := &document{pdf: pdf, in: in, env: in.Envelope, loc: loc, words: w}
	pdf.SetFooterFunc(d.footer)
	return d
}

func (d *document) footer() {
	p := d.pdf
	p.SetDrawColor(160, 160, 160)
	p.SetLineWidth(0.2)
	p.Line(margin, pageH-15, pageW-margin, pageH-15)
	p.SetFont(sans, "", 7.5)
	p.SetTextColor(90, 90, 90)
	p.SetXY(margin, pageH-14)
	p.CellFormat(contentW*0.75, 5, printable(d.words.title+" · "+d.words.envelope+" "+d.env.ID), "", 0, "L", false, 0, "")
	p.CellFormat(contentW*0.25, 5, fmt.Sprintf(d.words.page, p.PageNo(), "{nb}"), "", 0, "R", false, 0, "")
	p.SetTextColor(0, 0, 0)
}

func (d *document) render() {
	w := d.words
	d.pdf.AddPage()
	d.header()

	d.heading(w.envelopeSection)
	rows := [][2]string{
		{w.id, d.env.ID},
		{w.titleLabel, d.env.Title},
	}
	if d.env.Message != "" {
		rows = append(rows, [2]string{w.message, d.env.Message})
	}
	rows = append(rows,
		[2]string{w.sender, party(d.env.Sender)},
		[2]string{w.senderAuth, or(w.senderAuthText(d.env.SenderAuth), w.notGiven)},
		[2]string{w.created, d.time(d.env.CreatedAt)},
		[2]string{w.deadline, d.deadline(d.env.Deadline)},
		[2]string{w.state, d.envelopeState()},
	)
	if !d.env.EndedAt.IsZero() {
		rows = append(rows, [2]string{w.ended, d.time(d.env.EndedAt)})
	}
	rows = append(rows,
		[2]string{w.issued, d.time(d.in.Now)},
		[2]string{w.zone, fmt.Sprintf(w.zoneNote, d.zoneName())},
	)
	d.keyValues(rows, map[int]bool{0: true})

	d.heading(w.documentsSection)
	for i, doc := range d.env.Documents {
		rows := [][2]string{
			{w.pages, fmt.Sprint(doc.Pages)},
			{w.original, doc.Original},
			{w.final, doc.Current},
		}
		monospace := map[int]bool{1: true, 2: true}
		if seal, ok := d.sealOf(i); ok {
			rows = append(rows,
				[2]string{w.sealRow, fmt.Sprintf(w.sealValue, seal.Details["level"], d.time(seal.Time))},
				[2]string{w.sealSerial, seal.Details["serial"]})
			monospace[4] = true
		}
		d.block(fmt.Sprintf("%d. %s", i+1, doc.Name), rows, monospace)
	}

	d.heading(w.recipientsSection)
	for _, r := range d.inStepOrder() {
		d.recipient(r)
	}

	d.heading(w.trailSection)
	d.paragraph(fmt.Sprintf(w.trailNote, len(d.in.Trail), AttachmentName(d.env.ID)))
	d.trail()

	d.heading(w.verifySection)
	summary := [][2]string{
		{w.attachment, AttachmentName(d.env.ID)},
		{w.eventCount, fmt.Sprint(d.env.Audit.Seq)},
		{w.lastHash, d.env.Audit.Hash},
	}
	// The section is short: keep it on one page.
	h := d.height([]float64{contentW}, []cell{{text: w.sealedNote + w.verifyNote}}, 9) + 18
	for i, r := range summary {
		h += d.height(keyValueWidths, d.keyValue(r, i == 2), 9)
	}
	d.startSection(h)
	if d.in.Organisation != "" {
		d.paragraph(fmt.Sprintf(w.sealedNote, d.in.Organisation))
	}
	d.paragraph(w.verifyNote)
	if d.in.VerifyURL != "" {
		d.link(d.in.VerifyURL)
	}
	d.keyValues(summary, map[int]bool{2: true})
}

func (d *document) header() {
	p := d.pdf
	if d.in.Organisation != "" {
		p.SetFont(sans, "", 9)
		p.SetTextColor(90, 90, 90)
		for _, line := range wrap(p, d.in.Organisation, contentW) {
			p.CellFormat(contentW, 5, line, "", 1, "L", false, 0, "")
		}
		p.SetTextColor(0, 0, 0)
	}
	p.SetFont(sans, "B", 20)
	p.CellFormat(contentW, 11, d.words.title, "", 1, "L", false, 0, "")
	p.SetFont(sans, "", 10)
	for _, line := range wrap(p, d.env.Title, contentW) {
		p.CellFormat(contentW, 5, line, "", 1, "L", false, 0, "")
	}
	p.SetDrawColor(40, 60, 110)
	p.SetLineWidth(0.6)
	p.Line(margin, p.GetY()+2, pageW-margin, p.GetY()+2)
	p.SetY(p.GetY() + 4)
}

// heading starts a section. It is drawn with what follows it, so that it
// never ends a page alone: see startSection.
func (d *document) heading(text string) { d.pendingHeading = text }

// headingH is the height a heading takes.
const headingH = 12

// startSection draws the pending heading, on a new page unless need
// millimetres of what follows fit under it.
func (d *document) startSection(need float64) {
	text := d.pendingHeading
	if text == "" {
		return
	}
	d.pendingHeading = ""
	p := d.pdf
	if p.GetY()+headingH+need > bottom {
		p.AddPage()
	}
	p.SetY(p.GetY() + 4)
	p.SetFont(sans, "B", 12.5)
	p.SetTextColor(40, 60, 110)
	p.CellFormat(contentW, 7, text, "", 1, "L", false, 0, "")
	p.SetTextColor(0, 0, 0)
	p.SetY(p.GetY() + 1)
}

// block is a table of rows under a full-width shaded banner naming it,
// kept on one page when a page can hold it.
func (d *document) block(title string, rows [][2]string, monospace map[int]bool) {
	p := d.pdf
	banner := []cell{{text: title, style: bold, fill: true}}
	h := 1.5 + d.height([]float64{contentW}, banner, 9)
	for i, r := range rows {
		h += d.height(keyValueWidths, d.keyValue(r, monospace[i]), 9)
	}
	fits := margin+headingH+h <= bottom
	if fits {
		d.startSection(h)
	} else {
		d.startSection(h / 4)
	}
	if p.GetY()+h > bottom && fits {
		p.AddPage()
	}
	p.SetY(p.GetY() + 1.5)
	d.row([]float64{contentW}, banner, 9, nil)
	d.keyValues(rows, monospace)
}

func (d *document) paragraph(text string) {
	d.row([]float64{contentW}, []cell{{text: text, bare: true}}, 9, nil)
	d.pdf.SetY(d.pdf.GetY() + 1)
}

func (d *document) link(url string) {
	p := d.pdf
	p.SetFont(mono, "", 9)
	p.SetTextColor(20, 60, 170)
	d.startSection(5)
	for _, line := range wrap(p, url, contentW) {
		if p.GetY()+5 > bottom {
			p.AddPage()
		}
		p.CellFormat(contentW, 5, line, "", 1, "L", false, 0, url)
	}
	p.SetTextColor(0, 0, 0)
	p.SetY(p.GetY() + 1)
}

// keyValues is a two-column table of labels and values; the values of the
// rows in monospace are hashes and serials.
func (d *document) keyValues(rows [][2]string, monospace map[int]bool) {
	for i, r := range rows {
		d.row(keyValueWidths, d.keyValue(r, monospace[i]), 9, nil)
	}
}

var keyValueWidths = []float64{48, contentW - 48}

func (d *document) keyValue(r [2]string, monospace bool) []cell {
	value := cell{text: r[1]}
	if monospace {
		value.style = fixed
	}
	return []cell{{text: r[0], style: bold, shade: true}, value}
}

// style is a cell's font.
type style int

const (
	regular style = iota
	bold
	fixed
)

// cell is one table cell.
type cell struct {
	text  string
	style style
	// fill shades the cell as a banner; shade lightly, as a label; bare
	// draws no border.
	fill, shade, bare bool
}

func (d *document) font(s style, size float64) {
	switch s {
	case bold:
		d.pdf.SetFont(sans, "B", size)
	case fixed:
		d.pdf.SetFont(mono, "", size-0.5)
	default:
		d.pdf.SetFont(sans, "", size)
	}
}

// row draws one table row whose cells wrap their text within their column.
// A row taller than what is left of the page goes on across pages, after
// header (the table's column names, if any) is drawn again.
func (d *document) row(widths []float64, cells []cell, size float64, header []cell) {
	p := d.pdf
	lineH := size * 0.42
	lines, most := d.lines(widths, cells, size)
	d.startSection(float64(min(most, 3))*lineH + 2*pad)
	for done := 0; done < most; {
		fit := int((bottom - p.GetY() - 2*pad) / lineH)
		// A row that fits on a page is not split; a longer one is, with
		// at least three of its lines on the first page.
		onePage := int((bottom - margin - 2*pad) / lineH)
		if header != nil {
			onePage -= 3
		}
		if fit < 1 || (done == 0 && fit < most && (most <= onePage || fit < 3)) {
			p.AddPage()
			if header != nil {
				d.row(widths, header, size, nil)
			}
			continue
		}
		n := min(fit, most-done)
		h := float64(n)*lineH + 2*pad
		x, y := margin, p.GetY()
		for i, c := range cells {
			switch {
			case c.fill:
				p.SetFillColor(225, 230, 242)
			case c.shade:
				p.SetFillColor(244, 245, 248)
			}
			p.SetDrawColor(185, 190, 200)
			p.SetLineWidth(0.15)
			switch {
			case c.fill || c.shade:
				p.Rect(x, y, widths[i], h, "FD")
			case !c.bare:
				p.Rect(x, y, widths[i], h, "D")
			}
			d.font(c.style, size)
			for k := done; k < min(done+n, len(lines[i])); k++ {
				p.SetXY(x, y+pad+float64(k-done)*lineH)
				p.CellFormat(widths[i], lineH, lines[i][k], "", 0, "L", false, 0, "")
			}
			x += widths[i]
		}
		p.SetXY(margin, y+h)
		done += n
	}
}

// lines wraps each cell's text in its column; most is the longest.
func (d *document) lines(widths []float64, cells []cell, size float64) (lines [][]string, most int) {
	lines = make([][]string, len(cells))
	most = 1
	for i, c := range cells {
		d.font(c.style, size)
		lines[i] = wrap(d.pdf, c.text, widths[i])
		most = max(most, len(lines[i]))
	}
	return lines, most
}

// height is the height of a row on one page.
func (d *document) height(widths []float64, cells []cell, size float64) float64 {
	_, most := d.lines(widths, cells, size)
	return float64(most)*size*0.42 + 2*pad
}

// wrap splits text into the lines that fit width w in the current font,
// keeping the lines the text itself has.
func wrap(p *fpdf.Fpdf, text string, w float64) []string {
	var out []string
	for _, para := range strings.Split(printable(text), "\n") {
		if para == "" {
			out = append(out, "")
			continue
		}
		out = append(out, p.SplitText(para, w)...)
	}
	return out
}

// recipient writes one recipient's block.
func (d *document) recipient(r *workflow.Recipient) {
	w := d.words
	rows := [][2]string{{w.name, or(r.Name, "—")}, {w.email, r.Email}}
	if r.Phone != "" {
		rows = append(rows, [2]string{w.phone, r.Phone})
	}
	rows = append(rows, [2]string{w.role, w.roles[r.Role]})
	if r.Role.Acts() {
		rows = append(rows, [2]string{w.step, fmt.Sprintf(w.stepOf, r.Step+1, len(d.env.Steps))})
	}
	state := or(w.states[r.State], string(r.State))
	if !r.Role.Acts() && r.State == workflow.Waiting {
		state = w.onCompletion
	}
	rows = append(rows, [2]string{w.state, state})
	mine := d.recordsOf(r.ID)
	if r.Role.Acts() {
		rows = append(rows,
			[2]string{w.auth, d.authentication(r, mine)},
			[2]string{w.ip, or(strings.Join(clients(r, mine, func(c workflow.Client) string { return c.IP }), "\n"), "—")},
			[2]string{w.userAgent, or(strings.Join(clients(r, mine, func(c workflow.Client) string { return c.UserAgent }), "\n"), "—")},
			[2]string{w.invited, d.time(r.InvitedAt)},
			[2]string{w.sent, d.time(r.SentAt)},
			[2]string{w.viewed, d.time(r.ViewedAt)},
		)
		if !r.LastViewAt.IsZero() && !r.LastViewAt.Equal(r.ViewedAt) {
			rows = append(rows, [2]string{w.lastViewed, d.time(r.LastViewAt)})
		}
		rows = append(rows, [2]string{w.verified, d.times(mine, audit.CodeVerified)})
		if label, ok := w.acted[r.State]; ok {
			rows = append(rows, [2]string{label, d.time(r.ActedAt)})
		}
	}
	if r.Reason != "" {
		rows = append(rows, [2]string{w.reason, r.Reason})
	}
	if r.DelegatedFrom != "" {
		rows = append(rows, [2]string{w.delegatedFrom, d.who(r.DelegatedFrom)})
	}
	if r.DelegatedTo != "" {
		rows = append(rows, [2]string{w.delegatedTo, d.who(r.DelegatedTo)})
	}
	serial := -1
	if r.Signature != nil {
		serial = len(rows)
		rows = append(rows, [2]string{w.serial, r.Signature.CertSerial})
	}
	if r.DeliveryFailure != "" {
		rows = append(rows, [2]string{w.deliveryFailure, r.DeliveryFailure})
	}
	d.block(fmt.Sprintf("%s · %s — %s", r.ID, w.roles[r.Role], party(r.Party)), rows, map[int]bool{serial: true})
}

// inStepOrder lists the acting recipients step by step (delegates, added
// last, end their step), then the copies and the archivists.
func (d *document) inStepOrder() []*workflow.Recipient {
	out := make([]*workflow.Recipient, len(d.env.Recipients))
	for i := range d.env.Recipients {
		out[i] = &d.env.Recipients[i]
	}
	rank := func(r *workflow.Recipient) int {
		if r.Role.Acts() {
			return r.Step
		}
		return len(d.env.Steps) + map[workflow.Role]int{workflow.Copy: 0, workflow.Archivist: 1}[r.Role]
	}
	sort.SliceStable(out, func(i, j int) bool { return rank(out[i]) < rank(out[j]) })
	return out
}

// recordsOf returns the trail's records about recipient id.
func (d *document) recordsOf(id string) []audit.Record {
	var out []audit.Record
	for _, rec := range d.in.Trail {
		if rec.RecipientID == id {
			out = append(out, rec)
		}
	}
	return out
}

// authentication says how the recipient proved who they were: the
// channels their one-time codes went by, and a decline or delegation
// authenticated by a reply from the invited address.
func (d *document) authentication(r *workflow.Recipient, mine []audit.Record) string {
	w := d.words
	var ways []string
	add := func(s string) {
		for _, have := range ways {
			if have == s {
				return
			}
		}
		ways = append(ways, s)
	}
	channel := func(c string) {
		switch c {
		case "sms":
			add(fmt.Sprintf(w.bySMS, or(r.Phone, "—")))
		case "email":
			add(fmt.Sprintf(w.byEmail, r.Email))
		}
	}
	for _, rec := range mine {
		if rec.Type == audit.CodeSent {
			channel(rec.Details["channel"])
		}
		if rec.Details["authenticated_by"] == "reply mail" {
			add(w.byReply)
		}
	}
	if r.Code != nil {
		channel(r.Code.Channel)
	}
	if len(ways) == 0 {
		return w.none
	}
	return strings.Join(ways, "\n")
}

// clients lists, in the order first seen, the distinct values field takes
// in the recipient's audit records and last client.
func clients(r *workflow.Recipient, mine []audit.Record, field func(workflow.Client) string) []string {
	var out []string
	seen := map[string]bool{}
	add := func(c workflow.Client) {
		if v := field(c); v != "" && !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	for _, rec := range mine {
		add(workflow.Client{IP: rec.IP, UserAgent: rec.UserAgent})
	}
	add(r.LastSeen)
	return out
}

// times lists the times of the records of type typ.
func (d *document) times(recs []audit.Record, typ audit.Type) string {
	var out []string
	for _, rec := range recs {
		if rec.Type == typ {
			out = append(out, d.time(rec.Time))
		}
	}
	return or(strings.Join(out, "\n"), "—")
}

func (d *document) who(id string) string {
	if r := d.env.Recipient(id); r != nil {
		return id + " · " + party(r.Party)
	}
	return id
}

func (d *document) envelopeState() string {
	w := d.words
	s := w.envelopeStates[d.env.State]
	if d.env.State == workflow.StateInProgress && d.env.CurrentStep >= len(d.env.Steps) {
		// The completion seals every document, then makes this
		// certificate, the last of its artefacts, and then records the
		// envelope as completed: once the documents are sealed, the
		// certificate is issued for a completed envelope.
		s = w.envelopeStates[workflow.StateCompleted]
		for _, doc := range d.env.Documents {
			if !doc.Sealed {
				s = w.completing
			}
		}
	}
	if d.env.Reason != "" {
		s += " — " + d.env.Reason
	}
	return s
}

// readerZone is the zone the certificate writes times in: loc, but UTC
// for nil and for the system's zone on a machine set to UTC, so that no
// time is written twice the same.
func readerZone(loc *time.Location, at time.Time) *time.Location {
	if loc == nil {
		return time.UTC
	}
	if name, offset := at.In(loc).Zone(); loc.String() == "Local" && name == "UTC" && offset == 0 {
		return time.UTC
	}
	return loc
}

// zoneName names d's zone for the reader: "Local", the system's zone,
// tells a reader nothing, so it is named by its abbreviation then
// ("CET"), when the certificate was issued.
func (d *document) zoneName() string {
	if d.loc.String() != "Local" {
		return d.loc.String()
	}
	name, _ := d.in.Now.In(d.loc).Zone()
	return name
}

// time writes t in the configured zone and in UTC beside it.
func (d *document) time(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	const layout = "2006-01-02 15:04:05 MST"
	if d.loc == time.UTC {
		return t.UTC().Format(layout)
	}
	return t.In(d.loc).Format(layout) + "  ·  " + t.UTC().Format(layout)
}

// deadline writes the envelope's deadline. A deadline is the end of a
// day (SPEC §2, Échéance): its instant, midnight, would read as the next
// day, where the mails and pages say "5 January, 23:59"; so the day comes
// first, then the exact instant.
func (d *document) deadline(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	if l := t.In(d.loc); l.Hour() == 0 && l.Minute() == 0 && l.Second() == 0 && l.Nanosecond() == 0 {
		return fmt.Sprintf(d.words.endOfDay, l.Add(-time.Second).Format("2006-01-02")) + " (" + d.time(t) + ")"
	}
	return d.time(t)
}

// trailSize is the font size of the audit trail's table, small enough
// for a time in the zone to hold on one line of its column.
const trailSize = 7

// trail writes every audit record as a table row.
func (d *document) trail() {
	w := d.words
	widths := []float64{8, 35, 26, 40, 42, 23}
	header := []cell{
		{text: "N°", style: bold, fill: true}, {text: w.colTime, style: bold, fill: true},
		{text: w.colEvent, style: bold, fill: true}, {text: w.colActor, style: bold, fill: true},
		{text: w.colDetails, style: bold, fill: true}, {text: w.colHash, style: bold, fill: true},
	}
	d.row(widths, header, trailSize, nil)
	for _, rec := range d.in.Trail {
		when := "—"
		if !rec.Time.IsZero() {
			when = strings.Replace(d.time(rec.Time), "  ·  ", "\n", 1)
		}
		actor := verdict.Actor(rec.Actor, d.env.Language)
		if rec.RecipientID != "" {
			actor += " (" + rec.RecipientID + ")"
		}
		if rec.IP != "" {
			actor += "\n" + rec.IP
		}
		event := string(rec.Type)
		if label, ok := w.events[rec.Type]; ok {
			event = label + "\n(" + event + ")"
		}
		d.row(widths, []cell{
			{text: fmt.Sprint(rec.Seq)}, {text: when}, {text: event}, {text: actor},
			{text: d.details(rec)}, {text: rec.Hash[:min(len(rec.Hash), shortHash)], style: fixed},
		}, trailSize, header)
	}
}

// details writes a record's details one "label: value" per line, in the
// order of their keys, each key named in the certificate's language (a key
// it has no name for as it is). Documents are named as the documents
// section numbers and names them: a seal's "document" by its index,
// "document_N" of a submission or a signature by N. A SHA-256 is cut to
// its first shortHash digits, as in the hash column: the whole values are
// in the embedded trail, and the documents' whole hashes above.
func (d *document) details(rec audit.Record) string {
	m := rec.Details
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	lines := make([]string, len(keys))
	for i, k := range keys {
		label, value := or(d.words.details[k], k), m[k]
		if n, ok := strings.CutPrefix(k, "document_"); ok {
			// A submission's "NAME sha256=… pages=N": the label names it.
			label = d.documentName(n)
			if i, err := strconv.Atoi(n); err == nil && i >= 0 && i < len(d.env.Documents) {
				value = strings.TrimPrefix(value, d.env.Documents[i].Name+" ")
			}
		} else if k == "document" && rec.Type == audit.Sealed {
			value = d.documentName(value)
		} else if k == "sender_auth" {
			value = d.words.senderAuthText(value)
		} else {
			value = verdict.DetailValue(k, value, d.env.Language)
		}
		lines[i] = label + d.words.colon + sha256Digits.ReplaceAllStringFunc(value, func(h string) string { return h[:shortHash] + "…" })
	}
	return strings.Join(lines, "\n")
}

// shortHash is how many hex digits of a SHA-256 the audit trail's table
// shows.
const shortHash = 12

// sha256Digits matches a hex SHA-256.
var sha256Digits = regexp.MustCompile(`\b[0-9a-f]{64}\b`)

// documentName is "N. name" of the document of index i (a decimal
// string), as the documents section names it, or i as it is when the
// envelope has no such document.
func (d *document) documentName(i string) string {
	n, err := strconv.Atoi(i)
	if err != nil || n < 0 || n >= len(d.env.Documents) {
		return i
	}
	return fmt.Sprintf("%d. %s", n+1, d.env.Documents[n].Name)
}

// sealOf returns the trail's record of the seal of document i.
func (d *document) sealOf(i int) (audit.Record, bool) {
	for _, rec := range slices.Backward(d.in.Trail) {
		if rec.Type == audit.Sealed && rec.Details["document"] == strconv.Itoa(i) {
			return rec, true
		}
	}
	return audit.Record{}, false
}

func party(p workflow.Party) string {
	if p.Name == "" {
		return p.Email
	}
	return p.Name + " <" + p.Email + ">"
}

func or(s, otherwise string) string {
	if s == "" {
		return otherwise
	}
	return s
}
