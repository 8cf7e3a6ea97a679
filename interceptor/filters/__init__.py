"""
The pieces of the filter language; L{interceptor.flowfilter} is its public
face (C{parse}, C{match}, C{FilterSyntaxError}).

    - C{lexicon}: which characters make a bare word, quoting and unquoting;
    - C{nodes}: the filter base class and C{!}, C{&}, C{|};
    - C{operators}: the C{~x} operators, one class each;
    - C{parser}: text to a filter tree, with errors naming a column.

Plain Python over L{interceptor.model}: no Twisted.
"""
