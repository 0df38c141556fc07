"""The capture catalog in DynamoDB: sessions, nodes, files, locks and slots."""
