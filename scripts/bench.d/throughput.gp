# scripts/bench: sessions/s vs concurrency, one panel per scenario.
# Variables (gnuplot -e): term, outfile, datadir, scenarios ("full login ...")
n = words(scenarios)
eval sprintf("set terminal %s size %d,520 font 'sans,10'", term, 480 * n + 40)
set output outfile
set multiplot layout 1, n title "Sessions per second vs concurrency (median of rounds; log scales)"
set logscale xy
set xrange [7:700]
set xtics ("10" 10, "50" 50, "500" 500)
set grid xtics ytics mytics
set key bottom right
set xlabel "concurrent sessions"
set ylabel "sessions/s"
set style line 1 lw 2 pt 7 ps 1.2 lc rgb "#1f77b4"
set style line 2 lw 2 pt 5 ps 1.2 lc rgb "#d62728"
set style line 3 lw 2 pt 9 ps 1.2 lc rgb "#7f7f7f" dt 2
do for [i = 1:n] {
	s = word(scenarios, i)
	f = datadir . "/tp-" . s . ".dat"
	set title s
	plot f using 1:2 with linespoints ls 1 title "evpop3d", \
	     f using 1:3 with linespoints ls 2 title "Dovecot", \
	     f using 1:4 with linespoints ls 3 title "null responder"
}
unset multiplot
