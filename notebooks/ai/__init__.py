"""Room for the AI assistant: providers, prompt cells, the agent and its tools (API.md §10).

Nothing here yet; running a prompt cell answers "no AI model configured".
"""
