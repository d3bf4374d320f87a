"""CI's performance gate: instruction counts of a fixed request mix through the edge, under callgrind."""
