"""
The counters have a reader: SIGUSR1 logs them (one line per part and one
per command used), and with -d the same lines come at exit.
"""

import os
import re
import signal

import evtest


class Stats(evtest.ServerTestCase):

    def stats(self, last=None):
        """SIGUSR1, then the net, pop3 and per-command lines it logs (the
        command last comes last of those)."""
        start = len(self.srv.log())
        os.kill(self.srv.pid, signal.SIGUSR1)
        self.assertTrue(self.srv.wait_log(
            r"event=stats part=pop3 " + ("cmd=%s " % last if last else
                                          "logins="), start=start))
        text = "\n".join(self.srv.log()[start:])
        net = re.search(r"info event=stats part=net connections=(\d+) "
                        r"sessions=(\d+) refused=(\d+) refused_nofd=(\d+) "
                        r"accept_errors=(\d+)", text)
        pop3 = re.search(r"info event=stats part=pop3 logins=(\d+) "
                         r"login_failures=(\d+)", text)
        cmds = {m.group(1): (int(m.group(2)), int(m.group(3))) for m in
                re.finditer(r"event=stats part=pop3 cmd=(\w+) calls=(\d+) "
                            r"errors=(\d+)", text)}
        self.assertIsNotNone(net, text)
        self.assertIsNotNone(pop3, text)
        return [int(x) for x in net.groups()], \
            [int(x) for x in pop3.groups()], cmds

    def test_sigusr1_counts(self):
        mb = self.fresh()
        mb.add(b"Subject: one\n\nhello\n")
        net0, pop0, cmds0 = self.stats()

        c = self.login(mb)
        c.retr(1)
        c.err("RETR 7")
        c.quit()
        bad = self.connect()
        bad.ok("USER " + mb.user)
        bad.err("PASS wrong")
        idle = self.connect()		# still open at the next SIGUSR1

        net, pop, cmds = self.stats(last="RETR")
        self.assertEqual(net[0] - net0[0], 3, "connections")
        self.assertGreaterEqual(net[1], 2, "sessions open")
        self.assertEqual(pop[0] - pop0[0], 1, "logins")
        self.assertEqual(pop[1] - pop0[1], 1, "login failures")
        retr = cmds["RETR"]
        retr0 = cmds0.get("RETR", (0, 0))
        self.assertEqual((retr[0] - retr0[0], retr[1] - retr0[1]), (2, 1))
        self.assertNotIn("LAST", cmds)	# only the commands used
        idle.quit()
        self.assertTrue(self.srv.alive())	# SIGUSR1 does not stop it


if __name__ == "__main__":
    evtest.main()
