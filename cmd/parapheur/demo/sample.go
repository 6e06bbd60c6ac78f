package demo

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"codeberg.org/go-pdf/fpdf"
	"github.com/emersion/go-message/mail"
	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/goregular"
)

// Domain is the demo organisation's mail domain: the gateway's address
// and every mailbox of the demo are in it. It is reserved by RFC 2606, so
// nothing the demo does can reach a real mailbox.
const Domain = "demo.example"

// Person is one of the demo's mailboxes.
type Person struct {
	Name, Email string
}

func (p Person) String() string { return p.Name + " <" + p.Email + ">" }

// The demo's people: the agent who submits, and the parties of the sample
// envelope.
var (
	Agent      = Person{"Camille Agent", "agent@" + Domain}
	Approver   = Person{"Claire Dubois", "directrice@" + Domain}
	Mayor      = Person{"Jean Martin", "maire@" + Domain}
	President  = Person{"Sophie Bernard", "presidente@" + Domain}
	Accounting = Person{"Luc Petit", "comptabilite@" + Domain}
	Archives   = Person{"Service des archives", "archives@" + Domain}
)

// People are the mailboxes a visitor may submit from.
var People = []Person{Agent, Approver, Mayor, President, Accounting, Archives}

// SampleMessageID is the Message-ID of the sample submission: the same in
// every demo, so its envelope is found again after a restart.
const SampleMessageID = "<convention-exemple@" + Domain + ">"

// Submission is a mail from an agent to the gateway, with one PDF.
type Submission struct {
	From      Person
	To        string // the gateway's address
	MessageID string // generated when empty
	Subject   string
	// Text is the body: a greeting and the instruction block.
	Text    string
	PDFName string
	PDF     []byte
}

// Mail writes the submission as a mail client would: multipart/mixed, the
// text, then the PDF.
func (s Submission) Mail(now time.Time) ([]byte, error) {
	var h mail.Header
	h.SetDate(now)
	h.SetAddressList("From", []*mail.Address{{Name: s.From.Name, Address: s.From.Email}})
	h.SetAddressList("To", []*mail.Address{{Address: s.To}})
	h.SetSubject(s.Subject)
	if s.MessageID != "" {
		h.SetMessageID(strings.Trim(s.MessageID, "<>"))
	} else if err := h.GenerateMessageIDWithHostname(Domain); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	w, err := mail.CreateWriter(&b, h)
	if err != nil {
		return nil, err
	}
	var th mail.InlineHeader
	th.SetContentType("text/plain", map[string]string{"charset": "utf-8"})
	tw, err := w.CreateSingleInline(th)
	if err != nil {
		return nil, err
	}
	if _, err := tw.Write([]byte(strings.ReplaceAll(s.Text, "\n", "\r\n"))); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	var ah mail.AttachmentHeader
	ah.SetContentType("application/pdf", nil)
	ah.SetFilename(s.PDFName)
	aw, err := w.CreateAttachment(ah)
	if err != nil {
		return nil, err
	}
	if _, err := aw.Write(s.PDF); err != nil {
		return nil, err
	}
	if err := aw.Close(); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// SampleInstructions is the instruction block of the sample envelope, in
// language ("fr" or "en"): an approval, then the mayor and the association's
// president signing in parallel, a copy and an archivist.
func SampleInstructions(language string) string {
	if language == "en" {
		return fmt.Sprintf("Approver: %s\nSigners: %s, %s\nCc: %s\nArchive: %s\nMessage: The yearly agreement with the association, to sign this month.\n",
			Approver, Mayor, President, Accounting, Archives)
	}
	return fmt.Sprintf("Visa : %s\nSignataires : %s, %s\nCopie : %s\nArchive : %s\nMessage : Convention annuelle avec l'association, à signer ce mois-ci.\n",
		Approver, Mayor, President, Accounting, Archives)
}

// SampleSubmission is the sample envelope's submission by the agent.
func SampleSubmission(gateway, language string) (Submission, error) {
	pdf, err := SamplePDF()
	if err != nil {
		return Submission{}, err
	}
	s := Submission{From: Agent, To: gateway, MessageID: SampleMessageID, PDFName: "convention-jardins-partages.pdf", PDF: pdf,
		Subject: "Convention de partenariat – Les Jardins partagés",
		Text:    "Bonjour,\n\nMerci de faire viser puis signer la convention ci-jointe.\n\n" + SampleInstructions(language) + "\nCamille\n"}
	if language == "en" {
		s.Subject = "Partnership agreement – Les Jardins partagés"
		s.Text = "Hello,\n\nPlease have the attached agreement approved, then signed.\n\n" + SampleInstructions(language) + "\nCamille\n"
	}
	return s, nil
}

// sampleArticles are the sample convention's articles: heading, text.
var sampleArticles = [][2]string{
	{"Article 1 – Objet", "La présente convention a pour objet de définir les conditions dans lesquelles la Commune de Démo soutient l'association « Les Jardins partagés » dans la création et l'animation d'un jardin collectif ouvert aux habitants du quartier des Tilleuls, ainsi que les engagements réciproques des parties."},
	{"Article 2 – Engagements de l'association", "L'association s'engage à aménager et entretenir la parcelle mise à disposition, à organiser au moins deux ateliers de jardinage par mois ouverts à tous les habitants, à accueillir les classes des écoles de la commune sur rendez-vous, et à tenir un registre de fréquentation transmis chaque trimestre au service Vie associative."},
	{"Article 3 – Mise à disposition du terrain", "La Commune met gratuitement à disposition de l'association la parcelle cadastrée section AB n° 142, d'une surface de 1 250 m², située rue des Tilleuls. L'association en assure la garde et la jouissance paisible. Toute construction, même démontable, est soumise à l'accord écrit préalable de la Commune."},
	{"Article 4 – Soutien financier", "Pour l'année 2027, la Commune attribue à l'association une subvention de fonctionnement de 4 500 € (quatre mille cinq cents euros), versée en deux fois : 60 % à la signature de la présente convention, le solde au vu du bilan d'activité de l'année. L'association s'engage à utiliser la subvention conformément à l'objet défini à l'article 1."},
	{"Article 5 – Communication", "L'association mentionne le soutien de la Commune sur tous ses supports de communication relatifs au jardin, en faisant figurer le logotype de la Commune. La Commune peut faire état du projet dans ses publications."},
	{"Article 6 – Assurances et responsabilité", "L'association souscrit une assurance couvrant sa responsabilité civile et les risques liés à ses activités sur la parcelle, et en transmet l'attestation à la Commune chaque année. La responsabilité de la Commune ne peut être recherchée pour les dommages causés par les activités de l'association."},
	{"Article 7 – Contrôle et évaluation", "L'association transmet à la Commune, au plus tard le 31 mars de l'année suivante, un compte rendu financier de l'emploi de la subvention et un bilan qualitatif des activités menées. Un comité de suivi réunissant les deux parties se réunit au moins une fois par an."},
	{"Article 8 – Durée et résiliation", "La présente convention est conclue pour une durée d'un an à compter de sa signature. Elle peut être renouvelée par avenant. En cas de manquement de l'une des parties à ses obligations, l'autre partie peut la résilier par lettre recommandée avec accusé de réception, après une mise en demeure restée sans effet pendant un mois."},
	{"Article 9 – Litiges", "En cas de litige relatif à l'interprétation ou à l'exécution de la présente convention, les parties s'efforcent de le régler à l'amiable. À défaut, le litige est porté devant le tribunal administratif compétent."},
}

// SamplePDF is the sample convention: three A4 pages of a partnership
// agreement between a town and an association, with room for the
// signatures at the end.
func SamplePDF() ([]byte, error) {
	const (
		sans   = "gosans"
		margin = 22.0
		width  = 210 - 2*margin
	)
	p := fpdf.New("P", "mm", "A4", "")
	// fpdf rewrites the font bytes it is given while subsetting: a copy
	// for each document.
	p.AddUTF8FontFromBytes(sans, "", bytes.Clone(goregular.TTF))
	p.AddUTF8FontFromBytes(sans, "B", bytes.Clone(gobold.TTF))
	p.SetMargins(margin, margin, margin)
	p.SetAutoPageBreak(true, 25)
	p.SetTitle("Convention de partenariat – Les Jardins partagés", true)
	p.SetAuthor("Commune de Démo", true)
	p.SetCreator("parapheur demo", true)
	p.SetFooterFunc(func() {
		p.SetY(-15)
		p.SetFont(sans, "", 8)
		p.SetTextColor(110, 110, 110)
		p.CellFormat(0, 5, fmt.Sprintf("Convention Commune de Démo – Les Jardins partagés · page %d/{nb}", p.PageNo()), "", 0, "C", false, 0, "")
		p.SetTextColor(0, 0, 0)
	})
	p.AliasNbPages("{nb}")
	p.AddPage()
	p.SetFont(sans, "B", 10)
	p.MultiCell(width, 5, "COMMUNE DE DÉMO\nService Vie associative", "", "L", false)
	p.Ln(12)
	p.SetFont(sans, "B", 17)
	p.MultiCell(width, 8, "Convention de partenariat", "", "C", false)
	p.SetFont(sans, "", 12)
	p.MultiCell(width, 7, "pour la création et l'animation d'un jardin partagé", "", "C", false)
	p.Ln(10)
	p.SetFont(sans, "", 10.5)
	p.MultiCell(width, 5.5, "Entre les soussignés :\n\n"+
		"La Commune de Démo, représentée par son maire, M. Jean Martin, dûment habilité par délibération du conseil municipal du 12 novembre 2026, ci-après dénommée « la Commune »,\n\n"+
		"et\n\n"+
		"L'association « Les Jardins partagés », association régie par la loi du 1er juillet 1901, déclarée en préfecture sous le n° W000000000, dont le siège est 4 rue des Tilleuls à Démo, représentée par sa présidente, Mme Sophie Bernard, ci-après dénommée « l'association »,\n\n"+
		"il a été convenu ce qui suit.", "", "J", false)
	p.Ln(4)
	p.MultiCell(width, 5.5, "Préambule. La Commune conduit une politique de soutien aux initiatives des habitants en faveur de la nature en ville et du lien social. L'association, qui réunit une soixantaine d'adhérents, a pour objet de promouvoir le jardinage écologique et le partage de savoir-faire entre générations. C'est dans ce cadre que les parties ont souhaité formaliser leur partenariat.", "", "J", false)
	for _, a := range sampleArticles {
		p.Ln(4)
		p.SetFont(sans, "B", 11)
		p.MultiCell(width, 6, a[0], "", "L", false)
		p.SetFont(sans, "", 10.5)
		p.MultiCell(width, 5.5, a[1], "", "J", false)
	}
	p.AddPage()
	p.SetFont(sans, "", 10.5)
	p.MultiCell(width, 5.5, "Fait à Démo, en un exemplaire électronique signé par chacune des parties.", "", "L", false)
	p.Ln(10)
	y := p.GetY()
	for i, who := range []string{"Pour la Commune,\nle maire,\nJean Martin", "Pour l'association,\nla présidente,\nSophie Bernard"} {
		p.SetXY(margin+float64(i)*width/2, y)
		p.MultiCell(width/2-4, 5.5, who, "", "L", false)
	}
	p.Ln(30)
	p.SetFont(sans, "", 9)
	p.SetTextColor(90, 90, 90)
	p.MultiCell(width, 5, "Visa préalable : Claire Dubois, directrice générale des services.\nCopie : service de la comptabilité. Archivage : service des archives.", "", "L", false)
	var b bytes.Buffer
	if err := p.Output(&b); err != nil {
		return nil, fmt.Errorf("demo: the sample convention: %w", err)
	}
	return b.Bytes(), nil
}
