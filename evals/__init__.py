"""r2r_agent.evals."""
