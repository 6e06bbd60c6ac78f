package certificate

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pdfcpu/pdfcpu/pkg/api"
	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/gomono"
	"golang.org/x/image/font/gofont/goregular"

	"github.com/parapheur/parapheur/signing/internal/pdftest"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/audit"
)

// Documents' hashes: original and after each signature.
const (
	contractOriginal = "1111111111111111111111111111111111111111111111111111111111111111"
	annexOriginal    = "2222222222222222222222222222222222222222222222222222222222222222"
	contractSigned1  = "3333333333333333333333333333333333333333333333333333333333333333"
	annexSigned1     = "4444444444444444444444444444444444444444444444444444444444444444"
	contractFinal    = "a3f1c29b7e0d4486b5f2e9c1d07a6b3e8f4c2d1a0b9e8f7c6d5e4f3a2b1c0d9e"
	annexFinal       = "f00dbabe0123456789abcdef0123456789abcdef0123456789abcdef01234567"
	serialPaul       = "5c1d0e7a9b3f42e1"
	serialEmile      = "7e2b9f04c6a1d358"
)

// scenario is an envelope driven through the workflow machine, with the
// audit trail its transitions wrote.
type scenario struct {
	t     testing.TB
	env   *workflow.Envelope
	trail []audit.Record
	at    time.Time
}

func (s *scenario) apply(ev workflow.Event) {
	s.t.Helper()
	tr, err := workflow.Apply(s.env, ev)
	if err != nil {
		s.t.Fatalf("%T: %v", ev, err)
	}
	s.env, s.trail = tr.Envelope, append(s.trail, tr.Audit...)
}

// next advances the scenario's clock and returns the event metadata.
func (s *scenario) next(d time.Duration, c workflow.Client) workflow.Meta {
	s.at = s.at.Add(d)
	return workflow.Meta{At: s.at, Client: c}
}

// sign has id view the page, receive a code on channel, enter it and act.
func (s *scenario) verify(id, channel string, c workflow.Client) {
	s.apply(workflow.Viewed{Meta: s.next(3*time.Minute, c), RecipientID: id})
	s.apply(workflow.CodeSent{Meta: s.next(20*time.Second, c), RecipientID: id, MAC: []byte("mac-" + id), Channel: channel})
	s.apply(workflow.CodeVerified{Meta: s.next(40*time.Second, c), RecipientID: id, MAC: []byte("mac-" + id)})
}

func (s *scenario) delivered(ids ...string) {
	for _, id := range ids {
		s.apply(workflow.DeliveryStarted{Meta: s.next(time.Second, workflow.Client{}), Notice: workflow.Invitation, To: id, Attempt: 1})
		s.apply(workflow.DeliveryAttempted{Meta: s.next(time.Second, workflow.Client{}), Notice: workflow.Invitation, To: id,
			Outcome: workflow.OutcomeDelivered, Answer: "250 2.0.0 Ok: queued as 4XyZ"})
	}
}

var (
	firefox = workflow.Client{IP: "203.0.113.7", UserAgent: "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"}
	iphone  = workflow.Client{IP: "2001:db8:85a3::8a2e:370:7334", UserAgent: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"}
	edge    = workflow.Client{IP: "198.51.100.23", UserAgent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0"}
	chrome  = workflow.Client{IP: "192.0.2.44", UserAgent: "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"}
)

// completedEnvelope is an envelope of two documents whose steps are all
// done: an approver, then two signers in parallel (one by SMS), one of
// whom delegated; a copy and an archivist; names with accents and markup.
func completedEnvelope(t testing.TB, language string) *scenario {
	t.Helper()
	start := time.Date(2026, 3, 28, 23, 10, 5, 0, time.UTC) // the Paris date and the UTC date differ
	tr, err := workflow.Create(workflow.Draft{
		ID: "7QK2M9ZC4X", Language: language,
		Title: "Contrat-cadre de prestations de maintenance préventive et corrective des installations " +
			"thermiques du siège social — révision n° 3 après négociation, avec ses annexes tarifaires",
		Message: "Bonjour, voici la version définitive du contrat-cadre, relue par le service juridique. " +
			"Merci de la viser puis de la signer avant la fin du mois ; l’annexe A fixe les prix révisés au 1er avril. " +
			"N’hésitez pas à m’écrire pour toute question.",
		Sender:     workflow.Party{Name: "Hélène Dupré-Lefèvre", Email: "helene.dupre@org.example"},
		SenderAuth: "dmarc=pass (p=reject) header.from=org.example; dkim=pass header.d=org.example (mx.org.example)",
		MessageID:  "<cafe.1234@org.example>",
		Documents: []workflow.Document{
			{Name: "Contrat-cadre maintenance — révision 3.pdf", Pages: 14, Original: contractOriginal, Size: 412345},
			{Name: "Annexe A – grille tarifaire 2026.pdf", Pages: 3, Original: annexOriginal, Size: 88123},
		},
		Steps: []workflow.DraftStep{
			{Role: workflow.Approver, Parties: []workflow.Party{{Name: "Jean <script>alert(1)</script> Martin", Email: "jean.martin@org.example"}}},
			{Role: workflow.Signer, Parties: []workflow.Party{
				{Name: "Zoë Lefèvre-Ørsted", Email: "zoe@partner.example"},
				{Name: "Paul Durand", Email: "paul.durand@client.example", Phone: "+33612345678"},
			}},
		},
		Copies:     []workflow.Party{{Name: "Service comptabilité", Email: "compta@org.example"}},
		Archivists: []workflow.Party{{Name: "Archives — Cécile Noël", Email: "archives@org.example"}},
		Deadline:   start.Add(30 * 24 * time.Hour),
	}, start)
	if err != nil {
		t.Fatal(err)
	}
	s := &scenario{t: t, env: tr.Envelope, trail: tr.Audit, at: start}
	s.delivered("r1")
	s.verify("r1", "email", firefox)
	s.apply(workflow.Approved{Meta: s.next(2*time.Minute, firefox), RecipientID: "r1"})
	s.delivered("r2", "r3")
	s.verify("r2", "email", edge)
	s.apply(workflow.Delegated{Meta: s.next(time.Minute, edge), RecipientID: "r2",
		To: workflow.Party{Name: "Émile Zola", Email: "emile.zola@partner.example"}, Reason: "En congé jusqu’au 15 avril"})
	s.delivered("r6")
	s.verify("r3", "sms", iphone)
	s.apply(workflow.Signed{Meta: s.next(time.Minute, iphone), RecipientID: "r3", Signature: workflow.Signature{CertSerial: serialPaul,
		Documents: []workflow.DocumentVersion{
			{Index: 0, Previous: contractOriginal, SHA256: contractSigned1, Size: 420000},
			{Index: 1, Previous: annexOriginal, SHA256: annexSigned1, Size: 95000}}}})
	s.verify("r6", "email", chrome)
	s.apply(workflow.Signed{Meta: s.next(time.Minute, chrome), RecipientID: "r6", Signature: workflow.Signature{CertSerial: serialEmile,
		Documents: []workflow.DocumentVersion{
			{Index: 0, Previous: contractSigned1, SHA256: contractFinal, Size: 430000},
			{Index: 1, Previous: annexSigned1, SHA256: annexFinal, Size: 99000}}}})
	if s.env.CurrentStep != len(s.env.Steps) {
		t.Fatalf("the scenario leaves step %d of %d running", s.env.CurrentStep+1, len(s.env.Steps))
	}
	return s
}

func paris(t testing.TB) *time.Location {
	loc, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatalf("time zone database: %v (apt-get install -y tzdata)", err)
	}
	return loc
}

func input(t testing.TB, s *scenario) Input {
	return Input{Envelope: s.env, Trail: s.trail, Location: paris(t), VerifyURL: "https://sign.org.example/verify",
		Organisation: "Société Générale d’Équipements Thermiques SAS", Now: s.at.Add(5 * time.Second)}
}

// build builds the certificate and writes it to a temporary file.
func build(t *testing.T, in Input) (string, []byte) {
	t.Helper()
	pdf, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "certificate.pdf")
	if err := os.WriteFile(path, pdf, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, pdf
}

// text is the PDF's text with runs of blanks made one space, so that
// -layout's column padding does not matter.
func text(t *testing.T, path string) string {
	t.Helper()
	out := pdftest.Run(t, "pdftotext", "-layout", "-enc", "UTF-8", path, "-")
	return strings.Join(strings.Fields(out), " ")
}

func TestCertificateText(t *testing.T) {
	for _, tc := range []struct {
		language string
		want     []string
	}{
		{"fr", []string{"Certificat de réalisation", "Authentification de l’envoi", "Approbateur (visa)",
			"code à usage unique envoyé par SMS au +33612345678", "code à usage unique envoyé par courriel à zoe@partner.example",
			"A délégué à r6 · Émile Zola <emile.zola@partner.example>", "Délégué par r2 · Zoë Lefèvre-Ørsted <zoe@partner.example>",
			"Signé le 2026-03-29", "Approuvé le", "Code vérifié le", "Invitation remise le", "Consulté le", "Journal d’audit",
			"page 1 / ", "Europe/Paris"}},
		{"en", []string{"Certificate of completion", "Submission authenticated by", "Approver",
			"one-time code sent by SMS to +33612345678", "one-time code sent by email to zoe@partner.example",
			"Delegated to r6 · Émile Zola <emile.zola@partner.example>", "Delegated by r2 · Zoë Lefèvre-Ørsted <zoe@partner.example>",
			"Signed 2026-03-29", "Approved", "Code verified", "Invitation delivered", "Viewed", "Audit trail",
			"page 1 / ", "Europe/Paris"}},
	} {
		t.Run(tc.language, func(t *testing.T) {
			s := completedEnvelope(t, tc.language)
			in := input(t, s)
			path, _ := build(t, in)
			got := text(t, path)
			want := append(tc.want, s.env.ID, "dmarc=pass (p=reject) header.from=org.example",
				"Hélène Dupré-Lefèvre <helene.dupre@org.example>", "Société Générale d’Équipements Thermiques SAS",
				"Contrat-cadre maintenance — révision 3.pdf", "Annexe A – grille tarifaire 2026.pdf",
				contractOriginal, annexOriginal, contractFinal, annexFinal, serialPaul, serialEmile,
				"Jean <script>alert(1)</script> Martin", "Service comptabilité", "Archives — Cécile Noël",
				in.VerifyURL, AttachmentName(s.env.ID), s.env.Audit.Hash,
				firefox.IP, iphone.IP, edge.IP, chrome.IP, "Gecko/20100101 Firefox/128.0",
				"En congé jusqu’au 15 avril")
			// Every time in the zone and in UTC beside it: Paul signed at
			// 00:xx in Paris (CET), 23:xx UTC the day before.
			paul := s.env.Recipient("r3")
			want = append(want, paul.ActedAt.In(paris(t)).Format("2006-01-02 15:04:05 MST")+" · "+paul.ActedAt.Format("2006-01-02 15:04:05 UTC"))
			if !strings.Contains(want[len(want)-1], "CET") || paul.ActedAt.In(paris(t)).Day() == paul.ActedAt.Day() {
				t.Fatalf("the scenario should make the Paris and UTC dates differ: %s", want[len(want)-1])
			}
			for _, w := range want {
				if !strings.Contains(got, w) {
					t.Errorf("the certificate does not say %q", w)
				}
			}
			// Every record of the trail is listed with its short hash.
			for _, rec := range s.trail {
				if !strings.Contains(got, rec.Hash[:12]) {
					t.Errorf("the certificate does not list record %d (%s, hash %s)", rec.Seq, rec.Type, rec.Hash[:12])
				}
			}
			if t.Failed() {
				t.Logf("text:\n%s", got)
			}
		})
	}
}

// attachment extracts the embedded audit trail with qpdf.
func attachment(t *testing.T, path, name string) []audit.Record {
	t.Helper()
	if list := pdftest.Run(t, "qpdf", "--list-attachments", path); !strings.Contains(list, name) {
		t.Fatalf("qpdf lists no %s:\n%s", name, list)
	}
	if list := pdftest.Run(t, "pdfdetach", "-list", path); !strings.Contains(list, name) {
		t.Fatalf("pdfdetach lists no %s:\n%s", name, list)
	}
	var recs []audit.Record
	if err := json.Unmarshal([]byte(pdftest.Run(t, "qpdf", "--show-attachment="+name, path)), &recs); err != nil {
		t.Fatalf("the attachment is not a JSON array of records: %v", err)
	}
	return recs
}

func TestEmbeddedTrailVerifies(t *testing.T) {
	s := completedEnvelope(t, "fr")
	path, _ := build(t, input(t, s))
	recs := attachment(t, path, "audit-7QK2M9ZC4X.json")
	if len(recs) != len(s.trail) {
		t.Fatalf("the attachment holds %d records, the trail %d", len(recs), len(s.trail))
	}
	if err := audit.VerifyEnd(recs, s.env.Audit); err != nil {
		t.Fatalf("the embedded trail does not verify: %v", err)
	}
	// An edited event is detected and named.
	recs[7].IP = "192.0.2.1"
	var chainErr *audit.ChainError
	if err := audit.Verify(recs); !errors.As(err, &chainErr) || chainErr.Seq != recs[7].Seq {
		t.Fatalf("an edited record 8 gives %v, want a chain error at seq %d", err, recs[7].Seq)
	}
}

// TestAssociatedFile checks with qpdf's own reading that the attachment is
// associated with the document as PDF/A-3 does: in the catalog's /AF and
// /Names /EmbeddedFiles, with /AFRelationship /Data and a JSON subtype.
func TestAssociatedFile(t *testing.T) {
	s := completedEnvelope(t, "en")
	path, _ := build(t, input(t, s))
	var doc struct {
		QPDF []json.RawMessage `json:"qpdf"`
	}
	var objects map[string]struct {
		Value  map[string]any `json:"value"`
		Stream struct {
			Dict map[string]any `json:"dict"`
		} `json:"stream"`
	}
	if err := json.Unmarshal([]byte(pdftest.Run(t, "qpdf", "--json=2", "--json-key=qpdf", path)), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.QPDF) != 2 {
		t.Fatalf("qpdf --json gave %d parts, want its header and the objects", len(doc.QPDF))
	}
	if err := json.Unmarshal(doc.QPDF[1], &objects); err != nil {
		t.Fatal(err)
	}
	object := func(ref any) map[string]any {
		o, ok := objects["obj:"+ref.(string)]
		if !ok {
			t.Fatalf("no object %v", ref)
		}
		if o.Value != nil {
			return o.Value
		}
		return o.Stream.Dict
	}
	catalog := object(objects["trailer"].Value["/Root"])
	af, _ := catalog["/AF"].([]any)
	if len(af) != 1 {
		t.Fatalf("the catalog's /AF is %v, want one file specification", catalog["/AF"])
	}
	spec := object(af[0])
	if spec["/AFRelationship"] != "/Data" || spec["/Type"] != "/Filespec" {
		t.Errorf("the associated file is %v, want a /Filespec with /AFRelationship /Data", spec)
	}
	if uf := spec["/UF"]; uf != "u:audit-7QK2M9ZC4X.json" {
		t.Errorf("the file specification's /UF is %v", uf)
	}
	ef, _ := spec["/EF"].(map[string]any)
	if stream := object(ef["/F"]); stream["/Subtype"] != "/application#2fjson" && stream["/Subtype"] != "/application/json" {
		t.Errorf("the embedded file's /Subtype is %v, want application/json", stream["/Subtype"])
	}
	names := catalog["/Names"].(map[string]any)["/EmbeddedFiles"].(map[string]any)["/Names"].([]any)
	if len(names) != 2 || names[1] != af[0] {
		t.Errorf("/Names /EmbeddedFiles is %v, want the one in /AF", names)
	}
}

func TestValidators(t *testing.T) {
	for _, language := range []string{"fr", "en"} {
		s := completedEnvelope(t, language)
		path, pdf := build(t, input(t, s))
		pdftest.Run(t, "qpdf", "--check", path)
		inMargins(t, path)
		if err := api.Validate(bytes.NewReader(pdf), pdftest.PdfcpuConfig(t)); err != nil {
			t.Errorf("%s: pdfcpu validate: %v", language, err)
		}
		info := pdftest.Run(t, "pdfinfo", path)
		if !strings.Contains(info, "A4") {
			t.Errorf("%s: the certificate is not on A4:\n%s", language, info)
		}
	}
}

func TestDeterministic(t *testing.T) {
	fonts := map[string][]byte{"goregular": goregular.TTF, "gobold": gobold.TTF, "gomono": gomono.TTF}
	before := map[string][32]byte{}
	for name, ttf := range fonts {
		before[name] = sha256.Sum256(ttf)
	}
	s := completedEnvelope(t, "fr")
	// Builds at once in several goroutines (the race detector watches
	// them) all give the same bytes.
	const builds = 4
	pdfs := make([][]byte, builds)
	var wg sync.WaitGroup
	for i := range builds {
		wg.Go(func() {
			pdf, err := Build(input(t, s))
			if err != nil {
				t.Error(err)
			}
			pdfs[i] = pdf
		})
	}
	wg.Wait()
	for i := 1; i < builds; i++ {
		if !bytes.Equal(pdfs[0], pdfs[i]) {
			t.Fatalf("builds 1 and %d of the same input differ", i+1)
		}
	}
	// The fonts shared by the process are left as they were, so that the
	// next certificate is made from the same glyphs.
	for name, ttf := range fonts {
		if sha256.Sum256(ttf) != before[name] {
			t.Errorf("building changed the bytes of the %s font", name)
		}
	}
	first := pdfs[0]
	later := input(t, s)
	later.Now = later.Now.Add(time.Hour)
	third, err := Build(later)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(first, third) {
		t.Fatal("a certificate issued an hour later is the same bytes: the time of issue is not in it")
	}
}

func TestBadInput(t *testing.T) {
	s := completedEnvelope(t, "fr")
	tampered := append([]audit.Record(nil), s.trail...)
	tampered[2].Actor = "mallory@evil.example"
	other := s.env.Clone()
	other.Language = "de"
	for _, tc := range []struct {
		name string
		edit func(*Input)
		want string
	}{
		{"no envelope", func(in *Input) { in.Envelope = nil }, "no envelope"},
		{"no time", func(in *Input) { in.Now = time.Time{} }, "no time of issue"},
		{"language", func(in *Input) { in.Envelope = other }, `language "de"`},
		{"edited trail", func(in *Input) { in.Trail = tampered }, "record 3 (seq 3): hash does not match"},
		{"cut trail", func(in *Input) { in.Trail = s.trail[:len(s.trail)-1] }, "records were cut off"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := input(t, s)
			tc.edit(&in)
			if _, err := Build(in); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Build: %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

func BenchmarkBuild(b *testing.B) {
	s := completedEnvelope(b, "fr")
	in := input(b, s)
	var size int
	for b.Loop() {
		pdf, err := Build(in)
		if err != nil {
			b.Fatal(err)
		}
		size = len(pdf)
	}
	b.ReportMetric(float64(size), "bytes/pdf")
}

var wordBox = regexp.MustCompile(`<word xMin="([0-9.]+)" yMin="([0-9.]+)" xMax="([0-9.]+)" yMax="([0-9.]+)">([^<]*)</word>`)

// inMargins fails the test for every word poppler finds outside the page's
// margins (the footer's band below the bottom margin included).
func inMargins(t *testing.T, path string) {
	t.Helper()
	const mm = 72 / 25.4
	words := wordBox.FindAllStringSubmatch(pdftest.Run(t, "pdftotext", "-bbox", path, "-"), -1)
	if len(words) == 0 {
		t.Fatal("pdftotext -bbox found no words")
	}
	for _, w := range words {
		var box [4]float64
		for i := range box {
			box[i], _ = strconv.ParseFloat(w[i+1], 64)
		}
		if box[0] < (margin-0.5)*mm || box[2] > (pageW-margin+0.5)*mm || box[1] < (margin-6)*mm || box[3] > (pageH-8)*mm {
			t.Errorf("%q at x %.0f–%.0f, y %.0f–%.0f pt is outside the margins", w[5], box[0], box[2], box[1], box[3])
		}
	}
}

func TestLongValuesStayInMargins(t *testing.T) {
	s := completedEnvelope(t, "fr")
	env := s.env.Clone()
	// A message longer than a page, an unbroken token wider than a
	// column, and a long document name.
	env.Message = strings.Repeat("Une longue phrase du message de l’expéditeur, répétée pour remplir plus d’une page. ", 80) +
		"https://partner.example/" + strings.Repeat("x", 300) + " FIN-DU-MESSAGE"
	env.Documents[0].Name = strings.Repeat("Très-long-nom-de-document-sans-espace-", 8) + ".pdf"
	in := input(t, s)
	in.Envelope = env
	path, _ := build(t, in)
	pdftest.Run(t, "qpdf", "--check", path)
	inMargins(t, path)
	if got := text(t, path); !strings.Contains(got, "FIN-DU-MESSAGE") {
		t.Error("the end of the long message is missing")
	}
}

// TestSystemZone: a gateway whose zone is the system's (named "Local" by
// Go) writes UTC once on a machine set to UTC, and names any other system
// zone by its abbreviation, never "Local".
func TestSystemZone(t *testing.T) {
	s := completedEnvelope(t, "en")
	for _, tc := range []struct {
		zone     string
		want     []string
		dontWant []string
	}{
		{"UTC", []string{"UTC; every time is"}, []string{"Local", "UTC · "}},
		{"Europe/Paris", []string{"CET; every time is", " CET · "}, []string{"Local"}},
	} {
		data, err := os.ReadFile("/usr/share/zoneinfo/" + tc.zone)
		if err != nil {
			t.Fatalf("%v (install the time zone database: apt-get install tzdata)", err)
		}
		local, err := time.LoadLocationFromTZData("Local", data)
		if err != nil {
			t.Fatal(err)
		}
		in := input(t, s)
		in.Location = local
		path, _ := build(t, in)
		got := text(t, path)
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("with the system zone %s the certificate does not say %q", tc.zone, w)
			}
		}
		for _, w := range tc.dontWant {
			if strings.Contains(got, w) {
				t.Errorf("with the system zone %s the certificate says %q", tc.zone, w)
			}
		}
	}
}

// TestSenderAuthInFrench: how the sender was checked is written by the
// sender policy in English; a French certificate says it in French,
// keeping the authentication results as the receiving server wrote them.
func TestSenderAuthInFrench(t *testing.T) {
	const summary = "sender helene.dupre@org.example allowed by @org.example; dmarc=pass header.from=org.example (authserv-id mx.org.example)"
	for lang, want := range map[string]string{
		"fr": "expéditeur helene.dupre@org.example autorisé (@org.example figure dans senders.allowed) ; dmarc=pass header.from=org.example (résultats du serveur mx.org.example)",
		"en": summary,
	} {
		if got := vocabulary[lang].senderAuthText(summary); got != want {
			t.Errorf("%s: %q, want %q", lang, got, want)
		}
	}
	if got := vocabulary["fr"].senderAuthText("sender a@org.example allowed by a@org.example; no DMARC or DKIM result (authserv-id mx.org.example)"); strings.Contains(got, "no DMARC") || !strings.Contains(got, "aucun résultat DMARC ni DKIM") {
		t.Errorf("fr, no result: %q", got)
	}
	if got := vocabulary["fr"].senderAuthText("sender a@org.example allowed by @org.example; authentication not checked"); got != "expéditeur a@org.example autorisé (@org.example figure dans senders.allowed) ; authentification non vérifiée" {
		t.Errorf("fr, not checked: %q", got)
	}

	s := completedEnvelope(t, "fr")
	s.env.SenderAuth = summary
	path, _ := build(t, input(t, s))
	got := strings.Join(strings.Fields(text(t, path)), " ")
	if !strings.Contains(got, "expéditeur helene.dupre@org.example autorisé") || strings.Contains(got, "allowed by") {
		t.Errorf("the French certificate does not say how the sender was checked in French:\n%s", got)
	}
}

// TestDeadlineIsTheEndOfItsDay: an Échéance is the end of its day; the
// certificate names that day, as the mails and pages do ("5 janvier à
// 23:59"), and not only the instant, midnight, which reads as the next day.
func TestDeadlineIsTheEndOfItsDay(t *testing.T) {
	for lang, want := range map[string]string{
		"fr": "fin de la journée du 2026-04-30 (2026-05-01 00:00:00 CEST · 2026-04-30 22:00:00 UTC)",
		"en": "end of 2026-04-30 (2026-05-01 00:00:00 CEST · 2026-04-30 22:00:00 UTC)",
	} {
		s := completedEnvelope(t, lang)
		s.env.Deadline = time.Date(2026, 5, 1, 0, 0, 0, 0, paris(t))
		path, _ := build(t, input(t, s))
		if got := strings.Join(strings.Fields(text(t, path)), " "); !strings.Contains(got, want) {
			t.Errorf("%s: the certificate does not say %q:\n%s", lang, want, got)
		}
	}
}
