# scripts/bench: CDF of session latency, scenario full at c=50.
# Variables (gnuplot -e): term, outfile, datadir, servers ("evpop3d ...")
eval sprintf("set terminal %s size 900,560 font 'sans,10'", term)
set output outfile
set title "Session latency CDF: full (login, STAT, LIST, UIDL, 10 x RETR, QUIT), 50 concurrent"
set logscale x
set grid xtics ytics mxtics
set xlabel "session latency (ms, log scale)"
set ylabel "fraction of sessions <= x"
set yrange [0:1.02]
set key bottom right
title(s) = s eq "evpop3d" ? "evpop3d" : (s eq "dovecot" ? "Dovecot" : "null responder")
color(s) = s eq "evpop3d" ? 0x1f77b4 : (s eq "dovecot" ? 0xd62728 : 0x7f7f7f)
plot for [s in servers] datadir . "/cdf-" . s . ".dat" using 1:2 \
	with steps lw 2 lc rgb color(s) title title(s)
