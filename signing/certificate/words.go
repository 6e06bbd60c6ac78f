package certificate

import (
	"regexp"
	"strings"

	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/audit"
)

// words are the certificate's texts in one language.
type words struct {
	title, envelope, page                                                 string
	envelopeSection, documentsSection, recipientsSection                  string
	trailSection, verifySection                                           string
	id, titleLabel, message, sender, senderAuth, notGiven                 string
	created, deadline, state, ended, issued, zone, zoneNote, completing   string
	endOfDay                                                              string
	pages, original, final                                                string
	name, email, phone, role, step, stepOf, auth, ip, userAgent           string
	invited, sent, viewed, lastViewed, verified, reason                   string
	delegatedFrom, delegatedTo, serial, deliveryFailure                   string
	byEmail, bySMS, byReply, none                                         string
	trailNote, verifyNote, attachment, eventCount, lastHash, onCompletion string
	colTime, colEvent, colActor, colDetails, colHash                      string
	sealRow, sealValue, sealSerial, sealedNote, colon                     string
	// senderAuth writes, in this language, how the gateway checked the
	// submission's sender (the policy's summary, in English); nil: as it is.
	senderAuthWords func(string) string
	// details name the keys of the records' details.
	details        map[string]string
	roles          map[workflow.Role]string
	states         map[workflow.RecipientState]string
	acted          map[workflow.RecipientState]string
	envelopeStates map[workflow.State]string
	events         map[audit.Type]string
}

// vocabulary holds the certificate's texts by envelope language.
var vocabulary = map[string]words{
	"fr": {
		title: "Certificat de réalisation", envelope: "enveloppe", page: "page %d / %s",
		envelopeSection: "Enveloppe", documentsSection: "Documents", recipientsSection: "Destinataires",
		trailSection: "Journal d’audit", verifySection: "Vérification",
		id: "Identifiant", titleLabel: "Objet", message: "Message", sender: "Expéditeur",
		senderAuth: "Authentification de l’envoi", notGiven: "non indiquée", senderAuthWords: senderAuthFR,
		created: "Créée le", deadline: "Échéance", endOfDay: "fin de la journée du %s", state: "État", ended: "Terminée le",
		issued: "Certificat établi le", zone: "Fuseau horaire",
		zoneNote:   "%s ; chaque heure est donnée dans ce fuseau puis en UTC",
		completing: "toutes les étapes sont accomplies ; finalisation en cours",
		pages:      "Pages", original: "SHA-256 de l’original", final: "SHA-256 de la version finale",
		name: "Nom", email: "Adresse électronique", phone: "Téléphone mobile", role: "Rôle", step: "Étape",
		stepOf: "%d sur %d", auth: "Authentification", ip: "Adresse IP", userAgent: "Navigateur (User-Agent)",
		invited: "Invité le", sent: "Invitation remise le", viewed: "Consulté le",
		lastViewed: "Dernière consultation", verified: "Code vérifié le", reason: "Motif",
		delegatedFrom: "Délégué par", delegatedTo: "A délégué à",
		serial:          "N° de série du certificat de signature",
		deliveryFailure: "Échec de remise",
		byEmail:         "code à usage unique envoyé par courriel à %s",
		bySMS:           "code à usage unique envoyé par SMS au %s",
		byReply:         "réponse au courriel d’invitation depuis l’adresse invitée",
		none:            "aucune",
		trailNote: "Les %d événements ci-dessous forment une chaîne : chacun porte l’empreinte SHA-256 du précédent. " +
			"Le journal complet (adresses, navigateurs, empreintes entières) est joint à ce PDF sous le nom %s.",
		verifyNote: "Les documents signés peuvent être vérifiés à l’adresse suivante. La chaîne du journal joint " +
			"peut être recalculée par quiconque : le dernier événement doit porter l’empreinte ci-dessous. Le journal " +
			"envoyé aux archivistes prolonge cette chaîne (réalisation, envois) : son événement numéroté comme le nombre d’événements ci-dessous porte la même empreinte.",
		attachment: "Pièce jointe", eventCount: "Nombre d’événements", lastHash: "Empreinte du dernier événement",
		onCompletion: "reçoit les documents signés à la réalisation",
		colTime:      "Date", colEvent: "Événement", colActor: "Auteur, adresse IP", colDetails: "Détails", colHash: "Empreinte",
		sealRow: "Cachet de l’organisation", sealValue: "PAdES %s, apposé le %s", sealSerial: "N° de série du cachet",
		sealedNote: "Ce certificat et chaque document définitif portent le cachet électronique de %s (signature PAdES) : " +
			"un lecteur PDF le montre dans son panneau des signatures.",
		colon: " : ",
		details: map[string]string{"title": "Objet", "sender_auth": "Authentification", "steps": "Étapes",
			"cert_serial": "Certificat n°", "channel": "Canal", "reason": "Motif", "authenticated_by": "Authentifié par",
			"document": "Document", "previous": "Version signée", "sha256": "Version scellée", "level": "Niveau",
			"serial": "Cachet n°", "answer": "Réponse du serveur", "attempt": "Tentative", "mail": "Courriel",
			"outcome": "Résultat", "to": "Destinataire", "deadline": "Échéance", "email": "Adresse",
			"recipients": "Destinataires", "voided": "Annulé", "to_email": "Adresse du délégué", "to_name": "Nom du délégué"},
		roles: map[workflow.Role]string{workflow.Signer: "Signataire", workflow.Approver: "Approbateur (visa)",
			workflow.Copy: "Copie", workflow.Archivist: "Archiviste"},
		states: map[workflow.RecipientState]string{workflow.Waiting: "en attente", workflow.Pending: "invité, n’a pas agi",
			workflow.HasSigned: "a signé", workflow.HasApproved: "a approuvé", workflow.HasDeclined: "a refusé",
			workflow.HasDelegated: "a délégué", workflow.Delivered: "a reçu les documents"},
		acted: map[workflow.RecipientState]string{workflow.HasSigned: "Signé le", workflow.HasApproved: "Approuvé le",
			workflow.HasDeclined: "Refusé le", workflow.HasDelegated: "Délégué le"},
		envelopeStates: map[workflow.State]string{workflow.StateInProgress: "en cours", workflow.StateCompleted: "réalisée",
			workflow.StateDeclined: "refusée", workflow.StateCancelled: "annulée", workflow.StateExpired: "expirée"},
		events: map[audit.Type]string{audit.Submitted: "Envoi", audit.InvitationSent: "Invitation remise",
			audit.Viewed: "Consultation", audit.CodeSent: "Code envoyé", audit.CodeFailed: "Code erroné",
			audit.CodeVerified: "Code vérifié", audit.Signed: "Signature", audit.Approved: "Approbation",
			audit.Declined: "Refus", audit.Delegated: "Délégation", audit.Cancelled: "Annulation",
			audit.Expired: "Expiration", audit.ReminderSent: "Relance", audit.Resent: "Renvoi d’un courriel", audit.Bounced: "Non-remise",
			audit.Sealed: "Cachet de l’organisation", audit.CompletionDelay: "Finalisation retardée",
			audit.Completed: "Réalisation", audit.DeliveryStart: "Envoi d’un courriel",
			audit.DeliveryAttempt: "Remise d’un courriel"},
	},
	"en": {
		title: "Certificate of completion", envelope: "envelope", page: "page %d / %s",
		envelopeSection: "Envelope", documentsSection: "Documents", recipientsSection: "Recipients",
		trailSection: "Audit trail", verifySection: "Verification",
		id: "Identifier", titleLabel: "Subject", message: "Message", sender: "Sender",
		senderAuth: "Submission authenticated by", notGiven: "not stated",
		created: "Created", deadline: "Deadline", endOfDay: "end of %s", state: "Status", ended: "Ended",
		issued: "Certificate issued", zone: "Time zone",
		zoneNote:   "%s; every time is given in this zone, then in UTC",
		completing: "every step is done; completion under way",
		pages:      "Pages", original: "SHA-256 of the original", final: "SHA-256 of the final version",
		name: "Name", email: "Email address", phone: "Mobile phone", role: "Role", step: "Step",
		stepOf: "%d of %d", auth: "Authentication", ip: "IP address", userAgent: "Browser (User-Agent)",
		invited: "Invited", sent: "Invitation delivered", viewed: "Viewed",
		lastViewed: "Last viewed", verified: "Code verified", reason: "Reason",
		delegatedFrom: "Delegated by", delegatedTo: "Delegated to",
		serial:          "Signing certificate serial number",
		deliveryFailure: "Delivery failure",
		byEmail:         "one-time code sent by email to %s",
		bySMS:           "one-time code sent by SMS to %s",
		byReply:         "reply to the invitation from the invited address",
		none:            "none",
		trailNote: "The %d events below form a chain: each carries the SHA-256 of the one before. " +
			"The full trail (addresses, browsers, whole hashes) is attached to this PDF as %s.",
		verifyNote: "The signed documents can be verified at the address below. Anyone can recompute the chain " +
			"of the attached trail: its last event must carry the hash below. The trail mailed to archivists continues " +
			"this chain (completion, mails): its event numbered as the number of events below carries the same hash.",
		attachment: "Attachment", eventCount: "Number of events", lastHash: "Hash of the last event",
		onCompletion: "receives the signed documents on completion",
		colTime:      "Time", colEvent: "Event", colActor: "Actor, IP address", colDetails: "Details", colHash: "Hash",
		sealRow: "Organisation seal", sealValue: "PAdES %s, applied %s", sealSerial: "Seal serial number",
		sealedNote: "This certificate and every final document carry the electronic seal of %s (a PAdES signature): " +
			"a PDF reader shows it in its signature panel.",
		colon: ": ",
		details: map[string]string{"title": "Subject", "sender_auth": "Authentication", "steps": "Steps",
			"cert_serial": "Certificate no.", "channel": "Channel", "reason": "Reason", "authenticated_by": "Authenticated by",
			"document": "Document", "previous": "Signed version", "sha256": "Sealed version", "level": "Level",
			"serial": "Seal no.", "answer": "Server answer", "attempt": "Attempt", "mail": "Mail",
			"outcome": "Outcome", "to": "To", "deadline": "Deadline", "email": "Address",
			"recipients": "Recipients", "voided": "Voided", "to_email": "Delegate's address", "to_name": "Delegate's name"},
		roles: map[workflow.Role]string{workflow.Signer: "Signer", workflow.Approver: "Approver",
			workflow.Copy: "Copy", workflow.Archivist: "Archivist"},
		states: map[workflow.RecipientState]string{workflow.Waiting: "waiting", workflow.Pending: "invited, has not acted",
			workflow.HasSigned: "signed", workflow.HasApproved: "approved", workflow.HasDeclined: "declined",
			workflow.HasDelegated: "delegated", workflow.Delivered: "received the documents"},
		acted: map[workflow.RecipientState]string{workflow.HasSigned: "Signed", workflow.HasApproved: "Approved",
			workflow.HasDeclined: "Declined", workflow.HasDelegated: "Delegated"},
		envelopeStates: map[workflow.State]string{workflow.StateInProgress: "in progress", workflow.StateCompleted: "completed",
			workflow.StateDeclined: "declined", workflow.StateCancelled: "cancelled", workflow.StateExpired: "expired"},
		events: map[audit.Type]string{audit.Submitted: "Submission", audit.InvitationSent: "Invitation delivered",
			audit.Viewed: "View", audit.CodeSent: "Code sent", audit.CodeFailed: "Wrong code",
			audit.CodeVerified: "Code verified", audit.Signed: "Signature", audit.Approved: "Approval",
			audit.Declined: "Decline", audit.Delegated: "Delegation", audit.Cancelled: "Cancellation",
			audit.Expired: "Expiry", audit.ReminderSent: "Reminder", audit.Resent: "Mail resent", audit.Bounced: "Bounce",
			audit.Sealed: "Organisation seal", audit.CompletionDelay: "Completion delayed",
			audit.Completed: "Completion", audit.DeliveryStart: "Mail started",
			audit.DeliveryAttempt: "Mail delivery"},
	},
}

// senderAuthAllowed is the start of the sender policy's summary of an
// allowed sender (mailin/policy): "sender ADDR allowed by ENTRY; RESULTS".
var senderAuthAllowed = regexp.MustCompile(`^sender (\S+) allowed by (\S+); `)

// senderAuthFR writes the sender policy's summary in French; the
// authentication results themselves (dmarc=pass header.from=…) are
// technical terms, kept as the receiving server wrote them.
func senderAuthFR(s string) string {
	s = senderAuthAllowed.ReplaceAllString(s, "expéditeur $1 autorisé ($2 figure dans senders.allowed) ; ")
	return strings.NewReplacer(
		"authentication not checked", "authentification non vérifiée",
		"no DMARC or DKIM result", "aucun résultat DMARC ni DKIM",
		"(authserv-id ", "(résultats du serveur ",
	).Replace(s)
}

// senderAuthText is s, the sender policy's summary, in w's language.
func (w words) senderAuthText(s string) string {
	if w.senderAuthWords == nil {
		return s
	}
	return w.senderAuthWords(s)
}
