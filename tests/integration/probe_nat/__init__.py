"""Integration: the health-check probe path (real loader, XDP on veths, backends with the VIP on lo)."""
