from tests.sim.sshd import client_key, sshd_farm, sshd_vm  # noqa: F401  (pytest fixtures)
