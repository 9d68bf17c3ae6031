"""From a plan to results: map a plan's ablations to runs of the user's experiment (grid),
run them locally or on Ray (execute), and tabulate what they measured (results)."""
