"""r2r_agent.training."""
