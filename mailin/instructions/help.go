package instructions

import "strings"

// Help returns how to write an instruction block, in French for "fr" and in
// English otherwise, for the refusal mail. sms says whether the gateway
// sends one-time codes by SMS: only then does the help offer a signer's
// mobile number, which a gateway without SMS refuses.
func Help(language string, sms bool) string {
	text, mobile := helpEN, mobileEN
	if language == "fr" {
		text, mobile = helpFR, mobileFR
	}
	phone := " +33612345678"
	if !sms {
		phone, mobile = "", ""
	}
	return strings.NewReplacer("{phone}", phone, "{mobile}", mobile).Replace(text)
}

const helpFR = `Comment écrire les instructions

Écrivez, au début de votre message et avant tout texte transféré ou cité,
une ligne « Mot-clé : valeur » par instruction, par exemple :

  Visa: Jean Dupont <jean.dupont@org.example>
  Signataire: Marie Curie <marie@partenaire.example>{phone}
  Signataire: direction@org.example; dg@org.example
  Copie: compta@org.example
  Échéance: 31/07/2026
  Rappel: 3
  Message: Merci de signer la convention avant la fin du mois.

- Visa (ou Approver) : une étape d'approbation.
- Signataire (ou Signer) : une étape de signature.
  Chaque ligne Visa ou Signataire est une étape ; les étapes se suivent dans
  l'ordre des lignes. Plusieurs adresses sur une ligne, séparées par « , »
  ou « ; », agissent en parallèle, dans n'importe quel ordre.
{mobile}- Copie (ou Cc) : reçoit le document signé.
- Archive : reçoit le document signé et le journal d'audit.
- Échéance (ou Deadline) : AAAA-MM-JJ ou JJ/MM/AAAA ; l'enveloppe expire à la fin de ce jour.
- Rappel (ou Reminder) : relancer les destinataires tous les N jours ; 0 pour aucun rappel.
- Message : texte montré aux destinataires.
- Langue (ou Language) : fr ou en.
- Circuit : le nom d'un circuit prédéfini ; ses étapes passent avant celles du message.

Une adresse s'écrit « Prénom Nom <adresse@domaine> » ou simplement
« adresse@domaine ». Les mots-clés peuvent être au pluriel, en majuscules
ou sans accents. Joignez le ou les documents en PDF.
`

const helpEN = `How to write the instructions

At the top of your mail, before any forwarded or quoted text, write one
"Keyword: value" line per instruction, for example:

  Approver: John Smith <john.smith@org.example>
  Signer: Marie Curie <marie@partner.example>{phone}
  Signer: director@org.example; ceo@org.example
  Cc: accounting@org.example
  Deadline: 2026-07-31
  Reminder: 3
  Message: Please sign the agreement before the end of the month.

- Approver (or Visa): an approval step.
- Signer (or Signataire): a signature step.
  Each Approver or Signer line is one step; steps run in the order of the
  lines. Several addresses on one line, separated by "," or ";", act in
  parallel, in any order.
{mobile}- Cc (or Copie): receives the signed document.
- Archive: receives the signed document and the audit trail.
- Deadline (or Échéance): YYYY-MM-DD or DD/MM/YYYY; the envelope expires at the end of that day.
- Reminder (or Rappel): remind the recipients every N days; 0 for none.
- Message: text shown to the recipients.
- Language (or Langue): fr or en.
- Circuit: the name of a predefined circuit; its steps come before the mail's.

An address is "First Last <name@domain>" or just "name@domain". Keywords may
be plural, in any case, with or without accents. Attach the document(s) as PDF.
`

const mobileFR = `  Un signataire peut avoir un numéro de mobile après son adresse
  (+33612345678 ou 06 12 34 56 78) : son code à usage unique part alors par SMS.
`

const mobileEN = `  A signer may have a mobile number after their address (+33612345678):
  their one-time code is then sent by SMS.
`
