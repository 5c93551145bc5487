"""The admin's search boxes take a bounded search: each word of a search is a condition on every
search field, and thousands of them make a query the database refuses (SQLite: "Expression
tree is too large") or takes seconds over. The portal's admin site gives every list it
registers this bound (core/admin_site.py), the libraries' lists too."""

from django.contrib import messages

SEARCH_MAX_CHARACTERS = 100
SEARCH_MAX_WORDS = 10
SEARCH_TOO_LONG = (
    f"Search with at most {SEARCH_MAX_WORDS} words and {SEARCH_MAX_CHARACTERS} characters; "
    "nothing was searched."
)


class BoundedSearchMixin:
    """A search too long to be a search finds nothing and says why, above the list."""

    def get_search_results(self, request, queryset, search_term):
        if len(search_term) > SEARCH_MAX_CHARACTERS or len(search_term.split()) > SEARCH_MAX_WORDS:
            messages.warning(request, SEARCH_TOO_LONG)
            return queryset.none(), False
        return super().get_search_results(request, queryset, search_term)
