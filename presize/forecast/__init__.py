"""Forecasters behind one protocol (:class:`presize.forecast.base.Forecaster`).

=====================  ===============================================================
``percentile``         decaying-histogram percentiles (VPA-like), horizon-agnostic
``short_horizon``      trailing maximum × a conformal ratio quantile; O(1) per sample,
                       cheap enough for the agent to run per container per second
``ladder``             memory peaks: the shortest trailing window that has earned trust
``seasonal``           statsmodels: daily/weekly seasonality and trend, refitted on a
                       schedule, with prediction intervals (the only statsmodels user)
``ensemble``           picks the member with the lowest recent out-of-sample loss
``calibration``        adaptive conformal adjustment that keeps intervals honest
=====================  ===============================================================
"""
