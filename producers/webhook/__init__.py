"""The webhook receiver: CMS change hooks in, confirmed change events out.

`POST /hooks/{source}` authenticates the request with the source's adapter (generic pushsync
signature, Contentful request signing, Strapi header token), maps it to change events and
answers 202 only once the broker confirmed them. docs/webhooks.md describes the configuration.
"""
