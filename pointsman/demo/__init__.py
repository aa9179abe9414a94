"""The newcomer's demo: synthetic churn data and two genuinely different models."""
