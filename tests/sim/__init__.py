"""Wire-level simulators of the Proxmox VE and Hetzner Cloud APIs, with VMs backed by machines on loopback."""
