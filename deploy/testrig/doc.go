// Package testrig starts private, real servers for tests: redis-server (standalone with an
// append-only file, a Sentinel watching one, or a Redis Cluster), Dovecot (IMAP, LMTP) and
// Postfix (SMTP), each on free loopback ports with its configuration and data in a directory
// the caller owns, and stops them again.
//
// The project tests against real servers rather than mocks because what breaks in production
// is what a mock agrees with: Redis Cluster's cross-slot rules and MOVED redirections, an
// append-only file that must survive a restart, an IMAP server's literals and UIDs, an MTA's
// 4xx and 5xx answers at RCPT time. Nothing here touches a system-wide instance: every
// server reads only the configuration this package writes into the given directory.
//
// A missing server binary is an error whose message holds the apt-get command that installs
// it; tests fail on it rather than skip, so a green run always means the servers ran.
// The mail rig must run as root, since the Postfix master needs it; it runs Dovecot as the
// unprivileged system user "mailtest", which it creates with useradd on first use.
//
// With [MailOptions.OAuth2Introspection], Dovecot (and Postfix through it) also accepts
// XOAUTH2 and OAUTHBEARER with its oauth2 passdb, which asks the RFC 7662 introspection
// endpoint of a small OAuth 2.0 authorization server the test starts with [StartOAuth2]:
// it issues tokens by the grants of Microsoft's and Google's identity platforms, and the
// test expires or revokes them.
//
// Pages are tested in Debian's Chromium, headless, driven over the DevTools protocol by
// chromedp: [ChromiumRig] starts one, [Chromium.Tab] opens a private tab with a phone's or a
// desktop's viewport, with or without JavaScript, and saves a screenshot when the test fails.
//
// Tests take a server with [Redis], [RedisSentinel], [RedisCluster] or [MailRig], which stop it when the test
// ends. Servers shared by a whole package come from the Start functions in TestMain:
//
//	var mail *testrig.Mail
//
//	func TestMain(m *testing.M) {
//		dir, err := os.MkdirTemp("", "mailin")
//		if err == nil {
//			mail, err = testrig.StartMail(dir, testrig.MailOptions{})
//		}
//		if err != nil {
//			fmt.Fprintln(os.Stderr, err)
//			os.Exit(1)
//		}
//		code := m.Run()
//		if err := mail.Stop(); err != nil {
//			fmt.Fprintln(os.Stderr, err)
//			code = 1
//		}
//		os.RemoveAll(dir)
//		os.Exit(code)
//	}
//
// Stop waits until every process of the server is gone from /proc. Should the test binary
// die first (test timeout, ^C), a small watchdog process stops the servers it started.
package testrig

// DebianPackages lists the Debian 12 packages whose servers this package starts.
const DebianPackages = "redis-server redis-tools dovecot-imapd dovecot-lmtpd postfix"

// PostfixPreseed must run before postfix is installed; without it the package asks how to
// configure a system-wide mail server and may start one.
const PostfixPreseed = `echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections`

// InstallCommand installs every package of [DebianPackages], as root, without questions.
const InstallCommand = PostfixPreseed + " && " + aptGet + DebianPackages

const aptGet = "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "
