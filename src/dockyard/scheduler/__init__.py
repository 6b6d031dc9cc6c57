"""The scheduler: queue and cycle, plugins, solvers and the what-if simulator."""
