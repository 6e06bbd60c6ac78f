package verdict

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/parapheur/parapheur/workflow"
	"github.com/parapheur/parapheur/workflow/audit"
	"github.com/parapheur/parapheur/workflow/problem"
)

// words are the sentences of a report, by key, in both languages.
var words = problem.Phrasebook{
	"verify unnamed": {EN: "(file without a name)", FR: "(fichier sans nom)"},
	"verify unreadable": {EN: "This file is not a PDF that can be read: it cannot be verified.",
		FR: "Ce fichier n'est pas un PDF lisible : il ne peut pas être vérifié."},
	"verify encrypted": {EN: "This PDF is encrypted with a password: it cannot be verified. Send a copy saved without a password.",
		FR: "Ce PDF est chiffré par un mot de passe : il ne peut pas être vérifié. Envoyez-en une copie enregistrée sans mot de passe."},
	"verify valid":     {EN: "Valid: the %d signatures are intact.", FR: "Valide : les %d signatures sont intactes."},
	"verify valid one": {EN: "Valid: the signature is intact.", FR: "Valide : la signature est intacte."},
	"verify invalid":   {EN: "Not valid: a signature is broken or an embedded audit trail was changed.", FR: "Non valide : une signature est rompue ou un journal des événements joint a été modifié."},
	"verify changed unsigned": {EN: "Not valid: the file was changed after its last signature, and no signature covers the change: what it shows is not what was signed.",
		FR: "Non valide : le fichier a été modifié après sa dernière signature, et aucune signature ne couvre la modification : ce qu'il montre n'est pas ce qui a été signé."},
	"verify no signature":         {EN: "This file has no signature.", FR: "Ce fichier n'a aucune signature."},
	"verify intact":               {EN: "Signature intact: the signed content was not changed.", FR: "Signature intacte : le contenu signé n'a pas été modifié."},
	"verify broken":               {EN: "Signature broken: the signed content was changed, or the signature is not valid.", FR: "Signature rompue : le contenu signé a été modifié, ou la signature n'est pas valable."},
	"verify issuer ours":          {EN: "this gateway", FR: "ce parapheur"},
	"verify issuer other":         {EN: "not this gateway", FR: "pas ce parapheur"},
	"verify issuer unknown":       {EN: "not checked", FR: "non vérifié"},
	"verify covers":               {EN: "the whole file: nothing was changed after this signature", FR: "tout le fichier : rien n'a été modifié après cette signature"},
	"verify covers broken":        {EN: "the whole file", FR: "tout le fichier"},
	"verify later sigs":           {EN: "later signatures were added after this one (%d)", FR: "des signatures ont été ajoutées après celle-ci (%d)"},
	"verify validation data":      {EN: "only validation data, for long-term checking, was added after this signature", FR: "seules des données de validation, pour la vérification à long terme, ont été ajoutées après cette signature"},
	"verify changed":              {EN: "the file was changed after this signature, by no later signature", FR: "le fichier a été modifié après cette signature, sans signature ultérieure"},
	"verify trail intact":         {EN: "chain intact, %d events.", FR: "chaîne intacte, %d événements."},
	"verify trail broken at":      {EN: "BROKEN at event %d (%s, %s): %s.", FR: "ROMPU à l'événement %d (%s, %s) : %s."},
	"verify trail broken":         {EN: "BROKEN: %s.", FR: "ROMPU : %s."},
	"verify envelope":             {EN: "Envelope %s (%s).", FR: "Demande %s (%s)."},
	"verify envelope unknown":     {EN: "The signature names envelope %s, which this gateway does not hold (any more).", FR: "La signature désigne la demande %s, que ce parapheur ne détient pas (ou plus)."},
	"verify envelope unavailable": {EN: "The signature names envelope %s, which could not be looked up just now; try again in a moment.", FR: "La signature désigne la demande %s, qui n'a pas pu être consultée pour l'instant ; réessayez dans un moment."},
	"verify certificate":          {EN: "This file is the envelope's certificate of completion, as sent to every party.", FR: "Ce fichier est le certificat de réalisation de la demande, tel qu'envoyé à toutes les parties."},
	"verify final":                {EN: "This file is the final version of document %d (%s), as sent to every party.", FR: "Ce fichier est la version définitive du document %d (%s), telle qu'envoyée à toutes les parties."},
	"verify current":              {EN: "This file is the latest version of document %d (%s), but the envelope is not completed: it is not the final version.", FR: "Ce fichier est la dernière version du document %d (%s), mais la demande n'est pas terminée : ce n'est pas la version définitive."},
	"verify modified copy":        {EN: "This file is not a version this gateway made: it was changed after its last signature.", FR: "Ce fichier n'est pas une version produite par ce parapheur : il a été modifié après sa dernière signature."},
	"verify not current":          {EN: "This file is not the latest version of any document of this envelope: it is an earlier version, not the final one.", FR: "Ce fichier n'est la dernière version d'aucun document de cette demande : c'est une version antérieure, pas la version définitive."},
}

// Say returns the sentence of key in lang, formatted with args; an
// unknown key is a programming error, shown as "[key]".
func Say(lang, key string, args ...any) string { return words.Say(lang, key, args...) }

// envelopeWords name where an envelope is.
var envelopeWords = map[workflow.State]problem.Text{
	workflow.StateInProgress: {EN: "in progress", FR: "en cours"},
	workflow.StateCompleted:  {EN: "completed", FR: "terminée, signée"},
	workflow.StateDeclined:   {EN: "declined", FR: "refusée"},
	workflow.StateCancelled:  {EN: "cancelled", FR: "annulée"},
	workflow.StateExpired:    {EN: "expired", FR: "expirée"},
}

// auditWords name the events of the audit trail.
var auditWords = map[audit.Type]problem.Text{
	audit.Submitted:       {EN: "submitted", FR: "demande reçue"},
	audit.InvitationSent:  {EN: "invitation sent", FR: "invitation envoyée"},
	audit.Viewed:          {EN: "page opened", FR: "page ouverte"},
	audit.CodeSent:        {EN: "code sent", FR: "code envoyé"},
	audit.CodeFailed:      {EN: "wrong code", FR: "code erroné"},
	audit.CodeVerified:    {EN: "code verified", FR: "code vérifié"},
	audit.Signed:          {EN: "signed", FR: "signature"},
	audit.Approved:        {EN: "approved", FR: "visa"},
	audit.Declined:        {EN: "declined", FR: "refus"},
	audit.Delegated:       {EN: "delegated", FR: "délégation"},
	audit.Cancelled:       {EN: "cancelled", FR: "annulation"},
	audit.Expired:         {EN: "expired", FR: "expiration"},
	audit.ReminderSent:    {EN: "reminder sent", FR: "relance envoyée"},
	audit.Resent:          {EN: "mail resent", FR: "courriel renvoyé"},
	audit.Bounced:         {EN: "mail bounced", FR: "courriel non remis"},
	audit.Sealed:          {EN: "organisation's seal applied", FR: "cachet de l'organisation apposé"},
	audit.CompletionDelay: {EN: "completion delayed", FR: "finalisation retardée"},
	audit.Completed:       {EN: "completed", FR: "terminée"},
	audit.DeliveryStart:   {EN: "delivery started", FR: "envoi commencé"},
	audit.DeliveryAttempt: {EN: "delivery attempt", FR: "tentative de remise"},
}

// EnvelopeState names where an envelope is, in lang.
func EnvelopeState(st workflow.State, lang string) string { return Word(envelopeWords, st, lang) }

// AuditEvent names an event of the audit trail, in lang.
func AuditEvent(t audit.Type, lang string) string { return Word(auditWords, t, lang) }

// Word returns the word of k in table in lang, or k itself when the table
// lacks it (a state or event type newer than the table).
func Word[K ~string](table map[K]problem.Text, k K, lang string) string {
	if t, ok := table[k]; ok {
		return t.In(lang)
	}
	return string(k)
}

var frenchMonths = [...]string{"janvier", "février", "mars", "avril", "mai", "juin", "juillet",
	"août", "septembre", "octobre", "novembre", "décembre"}

// LongTime writes t in loc for a reader of lang, with the zone so that a
// reader elsewhere knows which time is meant: "6 December 2026, 14:05
// CET"; "" for the zero time.
func LongTime(t time.Time, loc *time.Location, lang string) string {
	if t.IsZero() {
		return ""
	}
	t = t.In(loc)
	if lang == "fr" {
		day := strconv.Itoa(t.Day())
		if t.Day() == 1 {
			day = "1er" // le premier du mois s'écrit en ordinal
		}
		return fmt.Sprintf("%s %s %d à %s", day, frenchMonths[t.Month()-1], t.Year(), t.Format("15:04 MST"))
	}
	return t.Format("2 January 2006, 15:04 MST")
}

// ByteSize writes n bytes for a person: "1.2 MB", "1,2 Mo".
func ByteSize(n int64, lang string) string {
	unit, units := "B", []string{"kB", "MB", "GB"}
	if lang == "fr" {
		unit, units = "o", []string{"ko", "Mo", "Go"}
	}
	if n < 1000 {
		return fmt.Sprintf("%d %s", n, unit)
	}
	v := float64(n)
	for _, u := range units {
		v /= 1000
		if v < 1000 || u == units[len(units)-1] {
			s := fmt.Sprintf("%.1f %s", v, u)
			if lang == "fr" {
				s = strings.Replace(s, ".", ",", 1)
			}
			return s
		}
	}
	return ""
}

// valueWords name the values of an audit record's details that are codes
// (a mail's kind, a delivery's outcome, how an action was authenticated),
// keyed by "key=value".
var valueWords = map[string]problem.Text{
	"mail=acknowledgement":           {EN: "acknowledgement", FR: "accusé de réception"},
	"mail=invitation":                {EN: "invitation", FR: "invitation"},
	"mail=reminder":                  {EN: "reminder", FR: "rappel"},
	"mail=code":                      {EN: "one-time code", FR: "code à usage unique"},
	"mail=declined":                  {EN: "decline notice", FR: "avis de refus"},
	"mail=cancelled":                 {EN: "cancellation notice", FR: "avis d'annulation"},
	"mail=expired":                   {EN: "expiry notice", FR: "avis d'expiration"},
	"mail=delivery_failure":          {EN: "delivery failure notice", FR: "avis d'échec de remise"},
	"mail=completion":                {EN: "final mail", FR: "envoi final"},
	"mail=delegated":                 {EN: "delegation notice", FR: "avis de délégation"},
	"mail=code_locked":               {EN: "code locked notice", FR: "avis de code bloqué"},
	"mail=completion_delayed":        {EN: "completion delayed notice", FR: "avis de finalisation retardée"},
	"outcome=delivered":              {EN: "delivered", FR: "remis"},
	"outcome=deferred":               {EN: "deferred", FR: "différé"},
	"outcome=failed":                 {EN: "failed", FR: "échec"},
	"authenticated_by=one-time code": {EN: "one-time code", FR: "code à usage unique"},
	"authenticated_by=reply mail":    {EN: "reply mail", FR: "réponse par courriel"},
	"channel=email":                  {EN: "email", FR: "courriel"},
	"channel=sms":                    {EN: "SMS", FR: "SMS"},
	"voided=true":                    {EN: "yes", FR: "oui"},
	"actor=" + workflow.SystemActor:  {EN: "the gateway", FR: "le parapheur"},
}

// codeKeys are the detail keys whose values are codes of valueWords.
var codeKeys = map[string]bool{"mail": true, "outcome": true, "authenticated_by": true, "channel": true, "voided": true, "actor": true}

// DetailValue names in lang the value of the audit detail key, one of a
// list with commas, when it is a code (see valueWords); any other value is
// the person's or the server's own words, returned as it is.
func DetailValue(key, value, lang string) string {
	if !codeKeys[key] {
		return value
	}
	parts := strings.Split(value, ",")
	for i, p := range parts {
		parts[i] = Word(valueWords, key+"="+p, lang)
		if parts[i] == key+"="+p {
			parts[i] = p
		}
	}
	return strings.Join(parts, ", ")
}

// Actor names the author of an audit record in lang: the gateway for its
// own events, else the person's address as recorded.
func Actor(actor, lang string) string { return DetailValue("actor", actor, lang) }
