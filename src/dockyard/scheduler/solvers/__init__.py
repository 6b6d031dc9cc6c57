"""Placement solvers: greedy online, ILP batch and knapsack dynamic programming."""
