"""Monitoring: profiles and sketches, live windows, drift, label quality, monitors, alerts.

sketches.py    one column's mergeable sketch (KLL for numbers, frequent items for
               categories) with its null count
profile.py     a data set's sketches: a version's reference or a live window's traffic
drift.py       reference vs current, judged by effect size, per column
quality.py     label metrics and calibration from feedback
windows.py     live windows on the serving path, flushed to the store, merged on read
feedback.py    ground truth joined to prediction ids
monitors.py    declarative rules evaluated over windows
alerts.py      deduplicated alerts and their delivery outbox; channels.py sends them
report.py      terminal and self-contained HTML reports
offline.py     the same drift code over two data frames or files
"""
