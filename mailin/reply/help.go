package reply

// Help returns how to give a command by replying, in French for "fr" and in
// English otherwise, for the refusal of a command the gateway could not
// apply.
func Help(language string) string {
	if language == "fr" {
		return helpFR
	}
	return helpEN
}

const helpFR = `Comment répondre par message

Répondez au message du parapheur qui vous concerne, depuis l'adresse à
laquelle il vous a été envoyé, en écrivant en première ligne :

  REFUSER : votre motif                  (un signataire ou un viseur refuse)
  DÉLÉGUER : Prénom Nom <adresse> motif  (il confie sa place à quelqu'un d'autre ; le motif est facultatif)
  ANNULER : votre motif                  (l'expéditeur annule sa demande ; le motif est facultatif)

Le lien personnel du message permet aussi de signer, viser, refuser ou
déléguer depuis la page de signature.`

const helpEN = `How to reply by mail

Reply to the gateway's mail about you, from the address it was sent to,
writing on the first line:

  DECLINE: your reason                   (a signer or approver declines)
  DELEGATE: First Last <address> reason  (they hand their place to someone else; the reason is optional)
  CANCEL: your reason                    (the sender cancels the request; the reason is optional)

The personal link of the mail also lets you sign, approve, decline or
delegate on the signing page.`
