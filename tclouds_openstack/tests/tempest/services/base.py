"""What the tclouds clients share: JSON in and out, expected status checked."""
import json

from tempest.lib.common import rest_client


class JSONClient(rest_client.RestClient):

    def _json(self, method, url, expected, body=None, params=None):
        if params:
            from urllib import parse
            query = parse.urlencode({k: v for k, v in params.items() if v is not None})
            if query:
                url = '%s?%s' % (url, query)
        payload = json.dumps(body) if body is not None else None
        resp, text = self.request(method, url, body=payload)
        self.expected_success(expected, resp.status)
        data = json.loads(text) if text else {}
        return rest_client.ResponseBody(resp, data)
