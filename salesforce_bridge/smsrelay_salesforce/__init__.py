"""The smsrelay Salesforce bridge."""
