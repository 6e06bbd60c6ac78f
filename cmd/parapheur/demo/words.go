package demo

// wordSet is the text of the demo's pages in one language.
type wordSet struct {
	Title, Intro, Steps, OpenMailbox, Mailbox, SampleHeading, SampleWaiting, SampleState string
	SubmitHeading, SubmitIntro, From, Subject, Instructions, PDF, PDFHint, Send          string
	DefaultSubject, Refresh, AllMailboxes, NoMail, To, Date, Back, Text, HTML            string
	Headers, Attachments, Download, RawMail, Newest, Live, ErrUpload, ErrForm            string
	Roles, EnvelopeStates, RecipientStates                                               map[string]string
}

var words = map[string]*wordSet{
	"fr": {
		Title: "Démo de parapheur",
		Intro: "Cette démo fait tourner la passerelle de signature complète sur votre machine : le relevé de sa boîte aux lettres, " +
			"les enveloppes, les mails, les pages de signature, les signatures PAdES et le scellement. Les mails qu'elle envoie ne partent pas : " +
			"ils arrivent tous dans la boîte aux lettres web ci-dessous, où chaque personne de la démo lit les siens.",
		Steps: "Camille, agente de la commune, vient d'envoyer une convention à faire viser par Claire puis signer par Jean et Sophie. " +
			"Ouvrez la boîte aux lettres, lisez l'invitation de Claire, suivez son lien, demandez un code, lisez-le dans la boîte, saisissez-le et visez ; " +
			"puis faites de même pour Jean et Sophie, jusqu'au mail final qui porte le PDF signé et le certificat.",
		OpenMailbox:   "Ouvrir la boîte aux lettres",
		Mailbox:       "Boîte aux lettres",
		SampleHeading: "La convention d'exemple",
		SampleWaiting: "La passerelle n'a pas encore relevé la convention d'exemple : rechargez la page dans un instant.",
		SampleState:   "État",
		SubmitHeading: "Envoyer votre propre document",
		SubmitIntro: "Comme un agent l'écrirait dans un mail à l'adresse de la passerelle : un PDF et un bloc d'instructions " +
			"(Visa, Signataire, Copie, Archive, Échéance, Message…). Toutes les adresses en @" + Domain + " sont autorisées à soumettre.",
		From: "De", Subject: "Objet", Instructions: "Texte du mail, avec le bloc d'instructions", PDF: "Document PDF",
		PDFHint: "Sans fichier, la convention d'exemple est envoyée.", Send: "Envoyer à la passerelle",
		DefaultSubject: "Mon document à signer",
		Refresh:        "Actualiser", AllMailboxes: "Toutes les boîtes", NoMail: "Aucun mail pour l'instant.",
		To: "À", Date: "Date", Back: "Retour à la boîte", Text: "Texte", HTML: "HTML", Headers: "En-têtes",
		Attachments: "Pièces jointes", Download: "Télécharger", RawMail: "Mail brut (.eml)",
		Newest: "Les plus récents en premier.", Live: "La liste se met à jour toute seule.",
		ErrUpload: "Le fichier n'a pas pu être lu (trop gros ?).", ErrForm: "Choisissez un expéditeur de la démo et donnez un objet.",
		Roles:           map[string]string{"approver": "visa", "signer": "signature", "cc": "copie", "archivist": "archive"},
		EnvelopeStates:  map[string]string{"in_progress": "en cours", "completed": "terminée", "declined": "refusée", "cancelled": "annulée", "expired": "expirée"},
		RecipientStates: map[string]string{"waiting": "en attente", "pending": "à faire", "signed": "signé", "approved": "visé", "declined": "refusé", "delegated": "délégué", "delivered": "remis"},
	},
	"en": {
		Title: "parapheur demo",
		Intro: "This demo runs the whole signing gateway on your machine: the polling of its mailbox, the envelopes, the mails, " +
			"the signing pages, the PAdES signatures and the seal. The mails it sends go nowhere: they all land in the web mailbox below, " +
			"where each person of the demo reads their own.",
		Steps: "Camille, an agent of the town, has just sent an agreement for Claire to approve, then for Jean and Sophie to sign. " +
			"Open the mailbox, read Claire's invitation, follow its link, ask for a code, read it in the mailbox, enter it and approve; " +
			"then do the same for Jean and Sophie, up to the final mail carrying the signed PDF and the certificate.",
		OpenMailbox:   "Open the mailbox",
		Mailbox:       "Mailbox",
		SampleHeading: "The sample agreement",
		SampleWaiting: "The gateway has not picked up the sample agreement yet: reload the page in a moment.",
		SampleState:   "State",
		SubmitHeading: "Send your own document",
		SubmitIntro: "As an agent would write it in a mail to the gateway's address: a PDF and an instruction block " +
			"(Approver, Signer, Cc, Archive, Deadline, Message…). Every address @" + Domain + " may submit.",
		From: "From", Subject: "Subject", Instructions: "The mail's text, with the instruction block", PDF: "PDF document",
		PDFHint: "Without a file, the sample agreement is sent.", Send: "Send to the gateway",
		DefaultSubject: "My document to sign",
		Refresh:        "Refresh", AllMailboxes: "All mailboxes", NoMail: "No mail yet.",
		To: "To", Date: "Date", Back: "Back to the mailbox", Text: "Text", HTML: "HTML", Headers: "Headers",
		Attachments: "Attachments", Download: "Download", RawMail: "Raw mail (.eml)",
		Newest: "Newest first.", Live: "The list updates itself.",
		ErrUpload: "The file could not be read (too large?).", ErrForm: "Choose a sender of the demo and give a subject.",
		Roles:           map[string]string{"approver": "approval", "signer": "signature", "cc": "copy", "archivist": "archive"},
		EnvelopeStates:  map[string]string{"in_progress": "in progress", "completed": "completed", "declined": "declined", "cancelled": "cancelled", "expired": "expired"},
		RecipientStates: map[string]string{"waiting": "waiting", "pending": "to do", "signed": "signed", "approved": "approved", "declined": "declined", "delegated": "delegated", "delivered": "delivered"},
	},
}
