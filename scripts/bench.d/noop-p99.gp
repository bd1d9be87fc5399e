# scripts/bench: p99 NOOP round trip of 200 idle sessions per load phase.
# Variables (gnuplot -e): term, outfile, datadir, servers ("evpop3d ...")
eval sprintf("set terminal %s size 800,480 font 'sans,10'", term)
set output outfile
set title "NOOP round trip p99 of 200 idle sessions, by concurrent load"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set logscale y
set ylabel "p99 NOOP round trip (ms, log scale)"
set key top left
# the issue's target while a big mailbox is opened
set arrow from graph 0, first 50 to graph 1, first 50 nohead dt 2 lc rgb "#555555"
set label "target 50 ms" at graph 0.99, first 62 right textcolor rgb "#555555"
title(s) = s eq "evpop3d" ? "evpop3d" : "Dovecot"
color(s) = s eq "evpop3d" ? 0x1f77b4 : 0xd62728
plot for [i = 1:words(servers)] datadir . "/noop.dat" \
	using (column(i + 1)):xtic(1) lc rgb color(word(servers, i)) \
	title title(word(servers, i))
