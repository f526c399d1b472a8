"""Web front end: a client for the payment service and the pages shown to the customer."""
