set terminal pngcairo size 900,540 font "sans,11"
set output "bench/latency.png"
set title "Guildhall huge room: send→delivery latency at 1 msg/s"
set xlabel "members connected (one guild, one channel)"
set ylabel "latency from scheduled send (ms)"
set logscale xy
set grid
set key left top
set format x "%.0s%c"
plot "bench/latency.dat" using 1:2 with linespoints title "p50", '' using 1:3 with linespoints title "p90", '' using 1:4 with linespoints title "p99", '' using 1:5 with linespoints title "p99.9", '' using 1:6 with linespoints title "max", 250 with lines dt 2 lc rgb "red" title "target p99 (250 ms)"
