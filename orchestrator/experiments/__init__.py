"""Experiments over many runs: grids of runs here (sweep.py) or on Ray (ray_sweep.py), and the report
that reads them (rundata.py, report.py, report_plots.py, stats.py).
"""
