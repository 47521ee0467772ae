"""Test harnesses that stand in for a cluster: the test API server, the fake kubelet and the tool installer.

Shipped in the package because ``kubetune dev-cluster`` uses them too; never imported by the core or the operator.
"""
