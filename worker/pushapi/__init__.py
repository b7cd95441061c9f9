"""A complete, retrying client for Coveo's Push API."""
