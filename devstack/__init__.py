"""Baton's local stack (``make run``): moto, the data plane, chalice local and event workers.

Development only: not part of the Lambda package (pyproject ships ``chalicelib`` alone).
"""

from devstack.cfn import app_env, deploy_data_plane

__all__ = ["app_env", "deploy_data_plane"]
