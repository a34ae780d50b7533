"""r2r_agent.integrations."""
