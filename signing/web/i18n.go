package web

import (
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/parapheur/parapheur/signing/verdict"
	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/problem"
)

// words are the sentences of the pages, by key, in both languages. A
// sentence with verbs (%s, %d) is formatted with the page's arguments,
// which html/template escapes afterwards like any other text.
var words = problem.Phrasebook{
	"gateway":        {EN: "Parapheur — electronic signature", FR: "Parapheur — signature électronique"},
	"switch":         {EN: "Language", FR: "Langue"},
	"from":           {EN: "From", FR: "De"},
	"message":        {EN: "Message", FR: "Message"},
	"deadline":       {EN: "To be done by", FR: "À faire au plus tard le"},
	"your role":      {EN: "You are asked to", FR: "Il vous est demandé de"},
	"your role done": {EN: "You were asked to", FR: "Il vous était demandé de"},
	"documents":      {EN: "Documents", FR: "Documents"},
	"view":           {EN: "Open %s", FR: "Ouvrir %s"},
	"download":       {EN: "Download", FR: "Télécharger"},
	"pages":          {EN: "%d pages", FR: "%d pages"},
	"one page":       {EN: "1 page", FR: "1 page"},
	"document n":     {EN: "document %d", FR: "document %d"},
	"fingerprint":    {EN: "SHA-256 fingerprint", FR: "Empreinte SHA-256"},
	"final docs":     {EN: "These are the final documents, with every signature.", FR: "Ce sont les documents définitifs, avec toutes les signatures."},
	"progress":       {EN: "Where the request stands", FR: "Où en est la demande"},
	"step":           {EN: "Step %d of %d: %s", FR: "Étape %d sur %d : %s"},
	"current":        {EN: "current step", FR: "étape en cours"},
	"at":             {EN: "on %s", FR: "le %s"},
	"observers":      {EN: "Copies and archivists", FR: "Copies et archivage"},
	"act sign":       {EN: "Sign the documents", FR: "Signer les documents"},
	"act approve":    {EN: "Approve the documents", FR: "Viser les documents"},
	"code step":      {EN: "1. Receive a one-time code", FR: "1. Recevoir un code à usage unique"},
	"code to mail":   {EN: "The code is sent by mail to %s.", FR: "Le code est envoyé par courriel à %s."},
	"code to sms":    {EN: "The code is sent by SMS to %s.", FR: "Le code est envoyé par SMS au %s."},
	"send code":      {EN: "Receive a code", FR: "Recevoir un code"},
	"send again":     {EN: "Receive a new code", FR: "Recevoir un nouveau code"},
	"code sent mail": {EN: "A code was sent by mail to %s at %s. It is valid until %s.",
		FR: "Un code a été envoyé par courriel à %s à %s. Il est valable jusqu'à %s."},
	"code sent sms": {EN: "A code was sent by SMS to %s at %s. It is valid until %s.",
		FR: "Un code a été envoyé par SMS au %s à %s. Il est valable jusqu'à %s."},
	"tries left":   {EN: "Tries left with this code: %d.", FR: "Essais restants avec ce code : %d."},
	"verified":     {EN: "Your code is verified: you may act without entering it again for a few minutes.", FR: "Votre code est vérifié : vous pouvez agir sans le saisir à nouveau pendant quelques minutes."},
	"sign step":    {EN: "2. Sign", FR: "2. Signer"},
	"approve step": {EN: "2. Approve", FR: "2. Viser"},
	"code":         {EN: "One-time code (6 digits)", FR: "Code à usage unique (6 chiffres)"},
	"consent sign": {EN: "I have read the documents and I agree to sign them electronically; this signature binds me like a handwritten one.",
		FR: "J'ai lu les documents et j'accepte de les signer électroniquement ; cette signature m'engage comme une signature manuscrite."},
	"consent approve": {EN: "I have read the documents and I approve them; my approval is recorded with my name and the date, and it binds me.",
		FR: "J'ai lu les documents et je les approuve (visa) ; mon visa est enregistré avec mon nom et la date, et il m'engage."},
	"sign":           {EN: "Sign", FR: "Signer"},
	"approve":        {EN: "Approve", FR: "Viser"},
	"decline title":  {EN: "Decline", FR: "Refuser"},
	"decline open":   {EN: "Decline…", FR: "Refuser…"},
	"decline help":   {EN: "Declining ends the request for everyone; the sender receives your reason. A one-time code is needed.", FR: "Refuser met fin à la demande pour tous ; l'expéditeur reçoit votre raison. Un code à usage unique est nécessaire."},
	"reason":         {EN: "Reason (required)", FR: "Raison (obligatoire)"},
	"decline":        {EN: "Decline", FR: "Refuser"},
	"delegate title": {EN: "Hand your place to someone else", FR: "Déléguer à quelqu'un d'autre"},
	"delegate open":  {EN: "Hand your place to someone else…", FR: "Déléguer à quelqu'un d'autre…"},
	"delegate help":  {EN: "The person you name receives their own invitation and acts in your place; the sender is told. A one-time code is needed.", FR: "La personne désignée reçoit sa propre invitation et agit à votre place ; l'expéditeur est prévenu. Un code à usage unique est nécessaire."},
	"name":           {EN: "Their name", FR: "Son nom"},
	"email":          {EN: "Their email address", FR: "Son adresse électronique"},
	"delegate":       {EN: "Delegate", FR: "Déléguer"},
	"cannot act":     {EN: "You cannot act on this request now", FR: "Vous ne pouvez pas agir sur cette demande pour l'instant"},
	"error title":    {EN: "That did not work", FR: "Cela n'a pas fonctionné"},
	"problem":        {EN: "There is a problem", FR: "Il y a un problème"},

	"done signed":        {EN: "You signed the documents %s.", FR: "Vous avez signé les documents %s."},
	"done approved":      {EN: "You approved the documents %s.", FR: "Vous avez visé les documents %s."},
	"done declined":      {EN: "You declined this request %s. Your reason: %s", FR: "Vous avez refusé cette demande %s. Votre raison : %s"},
	"done delegated":     {EN: "You handed your place to %s %s; they receive their own invitation.", FR: "Vous avez délégué à %s %s ; cette personne reçoit sa propre invitation."},
	"thanks":             {EN: "Thank you", FR: "Merci"},
	"recorded":           {EN: "Your answer is recorded", FR: "Votre réponse est enregistrée"},
	"not asked any more": {EN: "no longer asked", FR: "plus sollicité"},
	"next steps":         {EN: "When everyone has signed, you will receive the signed documents and the certificate of completion by mail.", FR: "Quand tout le monde aura signé, vous recevrez par courriel les documents signés et le certificat de réalisation."},

	"ended h completed": {EN: "Request completed", FR: "Demande terminée"},
	"ended h declined":  {EN: "Request declined", FR: "Demande refusée"},
	"ended h cancelled": {EN: "Request cancelled", FR: "Demande annulée"},
	"ended h expired":   {EN: "Request expired", FR: "Demande expirée"},
	"ended completed":   {EN: "This request is complete: every signature and approval has been given. The certificate of completion is sent to you by mail.", FR: "Cette demande est terminée : toutes les signatures et tous les visas ont été recueillis. Le certificat de réalisation vous est envoyé par courriel."},
	"ended declined":    {EN: "This request was declined by %s. Reason: %s", FR: "Cette demande a été refusée par %s. Raison : %s"},
	"ended cancelled":   {EN: "The sender cancelled this request. Reason: %s", FR: "L'expéditeur a annulé cette demande. Raison : %s"},
	"ended expired":     {EN: "This request expired: its deadline passed %s.", FR: "Cette demande a expiré : son échéance est passée %s."},
	"ended when":        {EN: "Ended %s.", FR: "Terminée %s."},
	"no reason":         {EN: "none given", FR: "aucune donnée"},

	"status title":    {EN: "Request status", FR: "Suivi de la demande"},
	"state":           {EN: "State", FR: "État"},
	"created":         {EN: "Sent for signature", FR: "Envoyée en signature"},
	"recipients":      {EN: "Steps and recipients", FR: "Étapes et destinataires"},
	"col who":         {EN: "Recipient", FR: "Destinataire"},
	"col state":       {EN: "State", FR: "État"},
	"invited":         {EN: "Invited", FR: "Invité"},
	"sent":            {EN: "Invitation delivered", FR: "Invitation remise"},
	"viewed":          {EN: "Opened", FR: "Ouvert"},
	"acted":           {EN: "Answered", FR: "Réponse"},
	"failure":         {EN: "Delivery failed: %s", FR: "Échec de remise : %s"},
	"delegated to":    {EN: "Delegated to %s", FR: "A délégué à %s"},
	"delegated from":  {EN: "In place of %s", FR: "À la place de %s"},
	"declined reason": {EN: "Reason: %s", FR: "Raison : %s"},
	"reason label":    {EN: "Reason", FR: "Raison"},
	"trail":           {EN: "Audit trail so far", FR: "Journal des événements"},
	"col time":        {EN: "Time", FR: "Heure"},
	"col event":       {EN: "Event", FR: "Événement"},
	"col actor":       {EN: "By", FR: "Par"},
	"col details":     {EN: "Details", FR: "Détails"},
	"show details":    {EN: "Show", FR: "Afficher"},
	"actions":         {EN: "Actions", FR: "Actions"},
	"remind title":    {EN: "Remind", FR: "Relancer"},
	"remind help":     {EN: "Send the pending recipients of the current step a reminder now.", FR: "Envoyer maintenant une relance aux destinataires de l'étape en cours qui n'ont pas répondu."},
	"remind":          {EN: "Remind", FR: "Relancer"},
	"cancel title":    {EN: "Cancel the request", FR: "Annuler la demande"},
	"cancel help":     {EN: "Cancelling ends the request for everyone; you and the recipients who have already signed or approved are told, with your reason.", FR: "Annuler met fin à la demande pour tous ; vous et les destinataires qui ont déjà signé ou visé êtes prévenus, avec votre raison."},
	"cancel reason":   {EN: "Reason for cancelling (required)", FR: "Raison de l'annulation (obligatoire)"},
	"cancel":          {EN: "Cancel the request", FR: "Annuler la demande"},
	"done reminded":   {EN: "A reminder was sent to the pending recipients.", FR: "Une relance a été envoyée aux destinataires en attente."},
	"done cancelled":  {EN: "The request is cancelled; you and the recipients who had already signed or approved are told.", FR: "La demande est annulée ; vous et les destinataires qui avaient déjà signé ou visé êtes prévenus."},
	"certificate":     {EN: "Certificate of completion", FR: "Certificat de réalisation"},

	"bad form":     {EN: "This form has expired or was not sent from this page. Reload the page and try again.", FR: "Ce formulaire a expiré ou n'a pas été envoyé depuis cette page. Rechargez la page et recommencez."},
	"reload":       {EN: "Reload the page", FR: "Recharger la page"},
	"form too big": {EN: "The form sent is too large.", FR: "Le formulaire envoyé est trop volumineux."},

	"verify link":  {EN: "Verify a document", FR: "Vérifier un document"},
	"verify title": {EN: "Verify a signed document", FR: "Vérifier un document signé"},
	"verify intro": {EN: "Choose one or more PDF files: for each, the page tells who signed it and when, whether each signature is intact, and whether this gateway issued it.",
		FR: "Choisissez un ou plusieurs fichiers PDF : pour chacun, la page indique qui l'a signé et quand, si chaque signature est intacte, et si ce parapheur l'a délivrée."},
	"verify private":  {EN: "The files are checked and then forgotten: nothing is kept.", FR: "Les fichiers sont vérifiés puis oubliés : rien n'est conservé."},
	"verify choose":   {EN: "PDF files to verify", FR: "Fichiers PDF à vérifier"},
	"verify limits":   {EN: "At most %d files, %s in all.", FR: "Au plus %d fichiers, %s en tout."},
	"verify submit":   {EN: "Verify", FR: "Vérifier"},
	"verify none":     {EN: "Choose at least one PDF file.", FR: "Choisissez au moins un fichier PDF."},
	"verify too big":  {EN: "The files sent are too large: at most %s in all. Send fewer or smaller files.", FR: "Les fichiers envoyés sont trop volumineux : au plus %s en tout. Envoyez-en moins, ou de plus petits."},
	"verify too many": {EN: "Too many files: at most %d at a time.", FR: "Trop de fichiers : au plus %d à la fois."},
	"verify time":     {EN: "Signed", FR: "Signé"},
	"verify level":    {EN: "Level", FR: "Niveau"},
	"verify issuer":   {EN: "Issued by", FR: "Délivrée par"},
	"verify changes":  {EN: "Coverage", FR: "Portée"},
	"verify trail":    {EN: "Embedded audit trail %s:", FR: "Journal des événements joint %s :"},

	"download title":          {EN: "Final documents", FR: "Documents définitifs"},
	"download until":          {EN: "Link valid until", FR: "Lien valable jusqu'au"},
	"reference":               {EN: "Reference", FR: "Référence"},
	"download files":          {EN: "Signed documents and certificate", FR: "Documents signés et certificat"},
	"download intro":          {EN: "These are the final documents, with every signature and the organisation's seal, then the certificate of completion. Compare each SHA-256 fingerprint with the one in your mail.", FR: "Voici les documents définitifs, avec toutes les signatures et le cachet de l'organisation, puis le certificat de réalisation. Comparez chaque empreinte SHA-256 avec celle de votre message."},
	"download audit":          {EN: "Audit trail", FR: "Journal d'audit"},
	"download audit help":     {EN: "Every event of the request up to its completion, as a JSON file whose chain of hashes reveals any event changed, removed or reordered.", FR: "Chaque événement de la demande jusqu'à son achèvement, dans un fichier JSON dont la chaîne d'empreintes révèle tout événement modifié, supprimé ou déplacé."},
	"download expired h":      {EN: "This download link has expired", FR: "Ce lien de téléchargement a expiré"},
	"download expired until":  {EN: "It worked until %s.", FR: "Il était valable jusqu'au %s."},
	"download expired ask":    {EN: "To get the documents again, ask the sender, %s, quoting the reference %s.", FR: "Pour obtenir à nouveau les documents, demandez-les à l'expéditeur, %s, en citant la référence %s."},
	"download expired verify": {EN: "To check a copy you already have (its signatures, and whether it is the final version), use the verification page.", FR: "Pour contrôler une copie que vous avez déjà (ses signatures, et s'il s'agit de la version définitive), utilisez la page de vérification."},
}

// roleWords name a role: what the person is asked to do.
var roleWords = map[workflow.Role]problem.Text{
	workflow.Signer:    {EN: "sign", FR: "signer"},
	workflow.Approver:  {EN: "approve (visa)", FR: "viser (visa)"},
	workflow.Copy:      {EN: "receive a copy", FR: "recevoir une copie"},
	workflow.Archivist: {EN: "archive", FR: "archiver"},
}

// stateWords name where a recipient is.
var stateWords = map[workflow.RecipientState]problem.Text{
	workflow.Waiting:      {EN: "waiting", FR: "en attente"},
	workflow.Pending:      {EN: "to do", FR: "à faire"},
	workflow.HasSigned:    {EN: "signed", FR: "a signé"},
	workflow.HasApproved:  {EN: "approved", FR: "a visé"},
	workflow.HasDeclined:  {EN: "declined", FR: "a refusé"},
	workflow.HasDelegated: {EN: "delegated", FR: "a délégué"},
	workflow.Delivered:    {EN: "sent the documents", FR: "documents envoyés"},
}

// detailWords name the facts of an audit record (audit.Record.Details);
// document_N keys are named by detailName.
var detailWords = map[string]problem.Text{
	"answer":           {EN: "server's answer", FR: "réponse du serveur"},
	"attempt":          {EN: "attempt", FR: "tentative"},
	"authenticated_by": {EN: "authenticated by", FR: "authentifié par"},
	"cert_serial":      {EN: "certificate serial", FR: "n° de certificat"},
	"certificate":      {EN: "certificate", FR: "certificat"},
	"channel":          {EN: "channel", FR: "canal"},
	"deadline":         {EN: "deadline", FR: "échéance"},
	"email":            {EN: "address", FR: "adresse"},
	"document":         {EN: "document", FR: "document"},
	"failures":         {EN: "wrong tries", FR: "essais erronés"},
	"level":            {EN: "PAdES level", FR: "niveau PAdES"},
	"previous":         {EN: "SHA-256 before", FR: "SHA-256 avant"},
	"serial":           {EN: "seal certificate serial", FR: "n° du certificat de cachet"},
	"sha256":           {EN: "SHA-256", FR: "SHA-256"},
	"mail":             {EN: "mail", FR: "courriel"},
	"outcome":          {EN: "outcome", FR: "résultat"},
	"reason":           {EN: "reason", FR: "raison"},
	"recipients":       {EN: "recipients", FR: "destinataires"},
	"sender_auth":      {EN: "sender authentication", FR: "authentification de l'expéditeur"},
	"steps":            {EN: "steps", FR: "étapes"},
	"title":            {EN: "title", FR: "titre"},
	"to":               {EN: "to", FR: "à"},
	"to_email":         {EN: "delegate's address", FR: "adresse du délégué"},
	"to_name":          {EN: "delegate's name", FR: "nom du délégué"},
	"voided":           {EN: "code voided", FR: "code annulé"},
}

// detailName names the audit fact key in lang.
func detailName(key, lang string) string {
	if n, ok := strings.CutPrefix(key, "document_"); ok {
		if i, err := strconv.Atoi(n); err == nil {
			return say(lang, "document n", i+1)
		}
	}
	return verdict.Word(detailWords, key, lang)
}

// sentence starts s with a capital: the refusals are written to be
// quoted inside a sentence ("…: le code est faux"), and a page shows them
// on their own.
func sentence(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToUpper(r)) + s[n:]
}

// say returns the sentence of key in lang, formatted with args.
func say(lang, key string, args ...any) string { return words.Say(lang, key, args...) }

// lastDay writes a deadline: an envelope expires at the end of its last
// day, stored as the next midnight, which reads as the day after; the last
// minute of the last day says it without ambiguity.
func lastDay(t time.Time, loc *time.Location, lang string) string {
	if l := t.In(loc); l.Hour() == 0 && l.Minute() == 0 && l.Second() == 0 {
		t = t.Add(-time.Minute)
	}
	return verdict.LongTime(t, loc, lang)
}

// shortTime writes t in loc as a date and time of a table cell.
func shortTime(t time.Time, loc *time.Location, lang string) string {
	if t.IsZero() {
		return ""
	}
	t = t.In(loc)
	if lang == "fr" {
		return t.Format("02/01/2006 15:04:05 MST")
	}
	return t.Format("2006-01-02 15:04:05 MST")
}

// clockTime writes the hour of t in loc: "14:05 CET".
func clockTime(t time.Time, loc *time.Location) string { return t.In(loc).Format("15:04 MST") }

// maskPhone hides a phone number but its last two digits, so that a page
// left open tells no one the number: "+33 •••••••78".
func maskPhone(p string) string {
	if len(p) <= 4 {
		return strings.Repeat("•", len(p))
	}
	prefix := ""
	if strings.HasPrefix(p, "+") {
		prefix, p = p[:3], p[3:]
	}
	return prefix + strings.Repeat("•", len(p)-2) + p[len(p)-2:]
}
