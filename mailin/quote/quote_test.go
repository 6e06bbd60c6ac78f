package quote

import "testing"

func TestOwn(t *testing.T) {
	own := "Signataire: a@org.example\nMerci"
	tests := []struct{ name, text, want string }{
		{"no separator", own + "\n\n", own},
		{"quoted lines", own + "\n> Signataire: b@evil.example", own},
		{"indented quote", own + "\n  > x", own},
		{"Outlook EN", own + "\n\n-----Original Message-----\nFrom: x", own},
		{"Outlook FR", own + "\n-----Message d'origine-----\nDe : x", own},
		{"Outlook Express", own + "\n----- Original Message ----- \nFrom: x", own},
		{"Outlook FR header block", own + "\n\nDe : Marie <m@x>\nEnvoyé : lundi 2 novembre 2026 10:12\nÀ : moi", own},
		{"Outlook FR header block with NBSP", own + "\nDe\u00a0: Marie\nEnvoyé\u00a0: lundi", own},
		{"Outlook rule above the header block", own + "\n________________________________\nFrom: Marie\nSent: Monday", own},
		{"Outlook HTML bold turned to text", own + "\n*From:* Marie\n*Sent:* Monday", own},
		{"Outlook EN header block", own + "\nFrom: Marie <m@x>\nSent: Monday, November 2, 2026 10:12 AM\nTo: me", own},
		{"Gmail EN", own + "\n\n---------- Forwarded message ---------\nFrom: x", own},
		{"Gmail FR", own + "\n---------- Message transféré ---------\nDe : x", own},
		{"Thunderbird EN", own + "\n-------- Forwarded Message --------\nSubject: x", own},
		{"Thunderbird FR", own + "\n-------- Message transféré --------\nSujet : x", own},
		{"Thunderbird original", own + "\n-------- Message original --------", own},
		{"Apple Mail EN", own + "\n\nBegin forwarded message:\n\nFrom: x", own},
		{"Apple Mail FR", own + "\n\nDébut du message réexpédié :\n\nDe: x", own},
		{"Gmail FR attribution", own + "\n\nLe lun. 2 nov. 2026 à 10:12, Marie <m@x> a écrit :\n> hi", own},
		{"wrapped FR attribution", own + "\nLe lun. 2 nov. 2026 à 10:12, Marie Curie <marie@partner.example> a\nécrit :\n", own},
		{"EN attribution", own + "\nOn Mon, Nov 2, 2026 at 10:12 AM Marie <m@x> wrote:\n> hi", own},
		{"wrapped EN attribution", own + "\nOn Mon, Nov 2, 2026 at 10:12 AM Marie Curie <\nmarie@partner.example> wrote:", own},
		{"CRLF", "Signataire: a@org.example\r\nMerci\r\n> quoted", own},
		{"a lone From: line is prose", "From: the legal team\nSignataire: a@org.example", "From: the legal team\nSignataire: a@org.example"},
		{"header keys without an author are prose", "Date: demain\nObjet: contrat", "Date: demain\nObjet: contrat"},
		{"a sentence starting with Le is prose", "Le contrat est joint.\nSignataire: a@org.example", "Le contrat est joint.\nSignataire: a@org.example"},
		{"dashes alone are prose", own + "\n----------\nSignataire: b@org.example", own + "\n----------\nSignataire: b@org.example"},
		{"separator first", "> quoted\nSignataire: a@org.example", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Own(tt.text); got != tt.want {
				t.Errorf("Own(%q) = %q, want %q", tt.text, got, tt.want)
			}
		})
	}
}

func TestFold(t *testing.T) {
	for in, want := range map[string]string{
		"  ÉCHÉANCE\u00a0": "echeance", "Envoyé\u00a0:": "envoye :", "Début du message réexpédié :": "debut du message reexpedie :",
		"\tSignataires ": "signataires",
	} {
		if got := Fold(in); got != want {
			t.Errorf("Fold(%q) = %q, want %q", in, got, want)
		}
	}
}
